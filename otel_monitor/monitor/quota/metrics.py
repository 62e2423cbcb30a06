"""Quota gauges for OpenTelemetry, labelled by ``service``: the one definition site of their names.

Prometheus series, as the collector's Prometheus exporter names them:

- ``quota_used``: units used in the current window (Gemini requests, YouTube units, D-ID/Stability credits)
- ``quota_limit``: the window's total
- ``quota_usage_ratio``: used / limit (0.85 for 85 %; above 1 once exceeded)
- ``quota_time_to_reset_seconds``: seconds until the next reset (absent for pay-as-you-go Stability)
- ``quota_time_to_exhaustion_seconds``: seconds until the quota runs out at the current burn rate (absent when
  not burning or when the reset comes first)
- ``quota_stale``: 1 while the last read failed and the values shown are the last known ones
- ``quota_credits_expiry_seconds``: seconds until the nearest expiry of unspent credits (D-ID's credit packs),
  labelled ``expires_on`` with that day (UTC, ``2025-11-01``) so an alert can name it; absent where none expire
- ``quota_model_used``, ``quota_model_limit``, ``quota_model_usage_ratio``: Gemini's per-model limits, labelled
  ``service``, ``model`` and ``limit`` (``per-minute requests``, ``per-minute input tokens``, ``requests per day``);
  series of their own, so the per-service quota rules never mistake a per-minute peak for the day's quota
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.metrics import METER_NAME

__all__ = ["QuotaMetricNames", "QuotaPromNames", "register_quota_metrics", "register_model_limit_metrics"]


class QuotaMetricNames:
    """OpenTelemetry instrument names."""

    USED = "quota.used"
    LIMIT = "quota.limit"
    USAGE = "quota.usage"
    TIME_TO_RESET = "quota.time_to_reset"
    TIME_TO_EXHAUSTION = "quota.time_to_exhaustion"
    STALE = "quota.stale"
    CREDITS_EXPIRY = "quota.credits_expiry"
    MODEL_USED = "quota.model.used"
    MODEL_LIMIT = "quota.model.limit"
    MODEL_USAGE = "quota.model.usage"


class QuotaPromNames:
    """The series names in Prometheus (unit suffixes added by the exporter)."""

    USED = "quota_used"
    LIMIT = "quota_limit"
    USAGE = "quota_usage_ratio"
    TIME_TO_RESET = "quota_time_to_reset_seconds"
    TIME_TO_EXHAUSTION = "quota_time_to_exhaustion_seconds"
    STALE = "quota_stale"
    CREDITS_EXPIRY = "quota_credits_expiry_seconds"
    MODEL_USED = "quota_model_used"
    MODEL_LIMIT = "quota_model_limit"
    MODEL_USAGE = "quota_model_usage_ratio"


class _QuotaState(Protocol):
    """What the gauges read of a quota (a QuotaView has it); read-only, so frozen dataclasses qualify."""

    @property
    def service(self) -> str: ...
    @property
    def used(self) -> float | None: ...
    @property
    def total(self) -> float | None: ...
    @property
    def reset_date(self) -> dt.datetime | None: ...
    @property
    def forecast_exhausted_at(self) -> dt.datetime | None: ...
    @property
    def stale(self) -> bool: ...
    @property
    def expires_at(self) -> dt.datetime | None: ...


def register_quota_metrics(
    states: Callable[[], Iterable[_QuotaState]],
    *,
    meter_provider: MeterProvider | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> None:
    """Creates the observable gauges; each collection reads ``states()`` (the latest quota of each service)."""
    meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)

    def gauge(
        value_of: Callable[[_QuotaState, dt.datetime], float | None],
    ) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def observe(_options: CallbackOptions) -> Iterator[Observation]:
            now = clock()
            for state in states():
                value = value_of(state, now)
                if value is not None:
                    yield Observation(value, {"service": state.service})

        return observe

    def seconds_until(moment: dt.datetime | None, now: dt.datetime) -> float | None:
        return None if moment is None else max((moment - now).total_seconds(), 0.0)

    meter.create_observable_gauge(
        QuotaMetricNames.USED,
        [gauge(lambda s, _: s.used)],
        unit="{unit}",
        description="Quota used in the current window",
    )
    meter.create_observable_gauge(
        QuotaMetricNames.LIMIT,
        [gauge(lambda s, _: s.total)],
        unit="{unit}",
        description="Quota total of the current window",
    )
    meter.create_observable_gauge(
        QuotaMetricNames.USAGE,
        [gauge(lambda s, _: s.used / s.total if s.used is not None and s.total else None)],
        unit="1",
        description="Share of the quota used (1 = exhausted)",
    )
    meter.create_observable_gauge(
        QuotaMetricNames.TIME_TO_RESET,
        [gauge(lambda s, now: seconds_until(s.reset_date, now))],
        unit="s",
        description="Time until the quota resets",
    )
    meter.create_observable_gauge(
        QuotaMetricNames.TIME_TO_EXHAUSTION,
        [gauge(lambda s, now: seconds_until(s.forecast_exhausted_at, now))],
        unit="s",
        description="Time until the quota runs out at the current burn rate",
    )
    meter.create_observable_gauge(
        QuotaMetricNames.STALE,
        [gauge(lambda s, _: 1 if s.stale else 0)],
        unit="",
        description="1 while the quota shown is the last known value (its read failed)",
    )

    def observe_expiry(_options: CallbackOptions) -> Iterator[Observation]:
        now = clock()
        for state in states():
            seconds = seconds_until(state.expires_at, now)
            if state.expires_at is not None and seconds is not None:
                expires_on = state.expires_at.astimezone(dt.UTC).date().isoformat()
                yield Observation(seconds, {"service": state.service, "expires_on": expires_on})

    meter.create_observable_gauge(
        QuotaMetricNames.CREDITS_EXPIRY,
        [observe_expiry],
        unit="s",
        description="Time until the nearest expiry of unspent credits (0 once past)",
    )


class _ModelLimitState(Protocol):
    """What the per-model gauges read of one limit of one model (a ModelLimitView has it)."""

    @property
    def service(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def limit(self) -> str: ...
    @property
    def used(self) -> float: ...
    @property
    def total(self) -> float | None: ...


def register_model_limit_metrics(
    states: Callable[[], Iterable[_ModelLimitState]], *, meter_provider: MeterProvider | None = None
) -> None:
    """The per-model gauges; each collection reads ``states()`` (the last read of every model's limits)."""
    meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)

    def gauge(
        value_of: Callable[[_ModelLimitState], float | None],
    ) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def observe(_options: CallbackOptions) -> Iterator[Observation]:
            for state in states():
                value = value_of(state)
                if value is not None:
                    yield Observation(value, {"service": state.service, "model": state.model, "limit": state.limit})

        return observe

    meter.create_observable_gauge(
        QuotaMetricNames.MODEL_USED, [gauge(lambda s: s.used)], unit="{unit}", description="Used of a model's limit"
    )
    meter.create_observable_gauge(
        QuotaMetricNames.MODEL_LIMIT, [gauge(lambda s: s.total)], unit="{unit}", description="A model's limit"
    )
    meter.create_observable_gauge(
        QuotaMetricNames.MODEL_USAGE,
        [gauge(lambda s: s.used / s.total if s.total else None)],
        unit="1",
        description="Share of a model's limit used (1 = reached)",
    )

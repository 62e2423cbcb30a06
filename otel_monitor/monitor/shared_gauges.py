"""The values every backend process shares through Redis, exported as gauges by the monitor: consecutive failures
per provider and today's active users, one exporter whatever the number of backend processes, nothing to opt in."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.business_metrics import ActiveUsers
from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.instrument.failure_streaks import RedisFailureStreaks
from otel_monitor.instrument.metrics import METER_NAME, observe_shared_values
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.instrument.redis_client import telemetry_redis
from otel_monitor.instrument.spend_ledger import SpendLedger
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.budgets import BudgetsConfig, read_spend, register_budget_metrics

__all__ = ["SharedGauges"]

_log = StructuredLogger("otel_monitor.shared_gauges")

# Seconds the monitor waits on the backend's Redis per read (connect and answer): a collection is never held longer.
READ_TIMEOUT_SECONDS = 0.25

_Value = TypeVar("_Value")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class SharedGauges:
    """Registers ``external_api.consecutive_failures`` {service} and ``video.active_users`` on ``meter_provider``
    (the global one when None); each collection reads them from the backend's Redis.

    Series ``external_api_consecutive_failures`` and ``video_active_users``, with the monitor's service name as
    ``job``. Reads run on the collecting thread (the monitor's periodic metric reader has its own) within the
    client's timeouts; a collection on an event loop's thread reads nothing (logged once), so the loop never waits
    on Redis. A Redis that does not answer leaves the gauges without a value (an unknown count is not 0) and fails
    nothing; it is logged once per outage (WARNING), and again at INFO when Redis answers.
    """

    def __init__(
        self,
        streaks: RedisFailureStreaks,
        active_users: ActiveUsers,
        *,
        meter_provider: MeterProvider | None = None,
        services: Sequence[str] = SERVICE_KEYS,
        closers: Iterable[Callable[[], object]] = (),
        spend: SpendLedger | None = None,
        budgets: BudgetsConfig | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._streaks = streaks
        self._active_users = active_users
        self._services = tuple(services)
        self._closers = list(closers)
        self._lock = threading.Lock()
        self._down = False
        self._loop_warned = False
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        observe_shared_values(
            meter, consecutive_failures=self._observe_streaks, active_users=self._observe_active_users
        )
        if spend is not None and budgets is not None and (budgets.daily or budgets.monthly):
            # the spend of each budget (budget_spent_usd), with the configured limits: only when a budget is set
            config = budgets
            register_budget_metrics(
                lambda: self._read(lambda: read_spend(spend, config, clock())), config, meter_provider=meter_provider
            )

    @classmethod
    def from_url(
        cls,
        redis_url: str,
        *,
        meter_provider: MeterProvider | None = None,
        timeout: float = READ_TIMEOUT_SECONDS,
        budgets: BudgetsConfig | None = None,
    ) -> SharedGauges:
        """The gauges over the backend's Redis at ``redis_url`` (the monitor's ``quota.redis_url``); connects
        nothing until a collection reads."""
        client = telemetry_redis(redis_url, timeout=timeout)
        return cls(
            RedisFailureStreaks(client),
            ActiveUsers(client),
            meter_provider=meter_provider,
            closers=[client.close],
            spend=SpendLedger(client),
            budgets=budgets,
        )

    def close(self) -> None:
        for close in self._closers:
            try:
                close()
            except Exception:
                pass

    # -- collection ---------------------------------------------------------------------------------------------
    def _observe_streaks(self, _options: CallbackOptions) -> list[Observation]:
        streaks = self._read(lambda: self._streaks.shared(self._services))
        if streaks is None:
            return []
        return [Observation(streaks[service].count, {"service": service}) for service in self._services]

    def _observe_active_users(self, _options: CallbackOptions) -> list[Observation]:
        users = self._read(self._active_users.count)
        return [] if users is None else [Observation(users)]

    def _read(self, read: Callable[[], _Value]) -> _Value | None:
        """``read()``, or None when it cannot be done here or Redis does not answer (logged once per outage)."""
        if _on_event_loop():
            with self._lock:
                warn, self._loop_warned = not self._loop_warned, True
            if warn:
                _log.warning(
                    "Shared gauges collected on an event loop thread: Redis not read, no value exported; "
                    "collect them from a metric reader's own thread"
                )
            return None
        try:
            value = read()
        except Exception as exc:
            with self._lock:
                first, self._down = not self._down, True
            if first:
                _log.warning(
                    "Shared gauges: the backend's Redis does not answer; consecutive failures and active "
                    "users have no value until it does",
                    reason=f"{type(exc).__name__}: {exc}"[:300],
                    error_code=SystemErrorCode.REDIS_CONNECTION_FAILED.value,
                )
            return None
        with self._lock:
            recovered, self._down = self._down, False
        if recovered:
            _log.info("Shared gauges: the backend's Redis answers again")
        return value

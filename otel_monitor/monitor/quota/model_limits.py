"""Gemini's per-model limits (requests and input tokens a minute, requests a day) as every process counted them."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from otel_monitor._utc_time import iso_utc
from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.instrument.usage_counter import ModelUsage
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.quota.config import QuotaThresholds
from otel_monitor.monitor.quota.reset_schedule import ResetRule, next_reset, window_start
from otel_monitor.monitor.quota.status import quota_status, usage_ratio

__all__ = ["GOOGLE_DAY", "LIMIT_NAMES", "ModelLimit", "ModelLimitView", "ModelLimitsSource", "models_json"]

_log = StructuredLogger("otel_monitor.quota.model_limits")

# Google's per-day limits of a model reset at midnight Pacific, whatever the project's own daily cap follows.
GOOGLE_DAY = ResetRule("daily", dt.time(0, 0), ZoneInfo("America/Los_Angeles"), 1)
# The limits by the names a refusal's QuotaFailure gives them (the ``limit`` label of the retry-after histogram).
PER_MINUTE_REQUESTS = "per-minute requests"
PER_MINUTE_TOKENS = "per-minute input tokens"
REQUESTS_PER_DAY = "requests per day"
LIMIT_NAMES = (PER_MINUTE_REQUESTS, PER_MINUTE_TOKENS, REQUESTS_PER_DAY)


@dataclass(frozen=True)
class ModelLimit:
    """One model's three figures (None: not configured, counts only)."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    requests_per_day: float | None = None


class ModelCounts(Protocol):
    """The per-model counts of the UsageCounter."""

    def models(self, service: str) -> set[str]: ...
    def model_usage(
        self, service: str, model: str, since: dt.datetime, until: dt.datetime | None = None
    ) -> ModelUsage: ...


@dataclass(frozen=True)
class ModelLimitView:
    """One limit of one model now: ``used`` of ``total`` until ``reset_date``."""

    service: str
    model: str
    limit: str
    used: float
    total: float | None
    reset_date: dt.datetime

    @property
    def ratio(self) -> float | None:
        return usage_ratio(self.used, self.total) if self.total else None

    def as_json(self, thresholds: QuotaThresholds) -> dict:
        ratio = self.ratio
        return {
            "used": _number(self.used),
            "total": None if self.total is None else _number(self.total),
            "percentage": None if ratio is None else _number(ratio * 100),
            "status": quota_status(ratio, thresholds),
            "reset_date": iso_utc(self.reset_date),
        }


def _number(value: float) -> int | float:
    value = round(float(value), 2)
    return int(value) if value.is_integer() else value


class ModelLimitsSource:
    """Reads each model's counts (the configured models and every model called) from the UsageCounter: the
    current UTC minute for the per-minute limits, the Pacific day for requests per day. ``latest`` keeps the last
    read for the gauges; a failed read keeps it and logs REDIS_CONNECTION_FAILED."""

    def __init__(self, service: str, counter: ModelCounts | None, limits: Mapping[str, ModelLimit]) -> None:
        self.service = service
        self._counter = counter
        self._limits = dict(limits)
        self.latest: list[ModelLimitView] = []

    async def read(self, now: dt.datetime) -> list[ModelLimitView]:
        counter = self._counter
        if counter is None:
            return self.latest
        day_start = window_start(GOOGLE_DAY, now) or now
        day_end = next_reset(GOOGLE_DAY, now) or now
        minute_end = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)

        def count() -> dict[str, ModelUsage]:
            models = sorted(set(self._limits) | counter.models(self.service))
            return {model: counter.model_usage(self.service, model, day_start, now) for model in models}

        try:
            usage = await asyncio.to_thread(count)
        except Exception as exc:
            _log.warning(
                "Model limits read failed",
                service=self.service,
                error_code=SystemErrorCode.REDIS_CONNECTION_FAILED.value,
                reason=type(exc).__name__,
            )
            return self.latest
        views = []
        for model, counts in usage.items():
            limit = self._limits.get(model, ModelLimit())
            views += [
                ModelLimitView(
                    self.service,
                    model,
                    PER_MINUTE_REQUESTS,
                    counts.requests_this_minute,
                    limit.requests_per_minute,
                    minute_end,
                ),
                ModelLimitView(
                    self.service,
                    model,
                    PER_MINUTE_TOKENS,
                    counts.tokens_this_minute,
                    limit.tokens_per_minute,
                    minute_end,
                ),
                ModelLimitView(
                    self.service, model, REQUESTS_PER_DAY, counts.requests_since, limit.requests_per_day, day_end
                ),
            ]
        self.latest = views
        return views


def models_json(views: list[ModelLimitView], thresholds: QuotaThresholds) -> dict[str, dict[str, dict]]:
    """``{model: {limit: {used, total, percentage, status, reset_date}}}``."""
    out: dict[str, dict[str, dict]] = {}
    for view in views:
        out.setdefault(view.model, {})[view.limit] = view.as_json(thresholds)
    return out

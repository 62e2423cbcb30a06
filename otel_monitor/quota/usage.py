"""Current quota per provider from its source: the UsageCounter (Gemini, YouTube) or a balance poll (D-ID, Stability)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from otel_monitor.error_codes import SystemErrorCode
from otel_monitor.quota.balances import BalancePoller
from otel_monitor.quota.reset_schedule import ResetRule, next_reset, window_start
from otel_monitor.structured_logging import StructuredLogger

__all__ = ["QuotaReading", "QuotaSource", "CounterQuotaSource", "BalanceQuotaSource"]

_log = StructuredLogger("otel_monitor.quota.usage")


@dataclass(frozen=True)
class QuotaReading:
    """What a source says now: ``used`` of ``total`` (None: unknown) in the window that ends at ``reset_date``."""

    service: str
    used: float | None
    total: float | None
    unit: str
    window_start: dt.datetime | None
    reset_date: dt.datetime | None
    read_at: dt.datetime
    stale: bool = False
    error_code: str | None = None


class QuotaSource(Protocol):
    service: str
    unit: str
    rule: ResetRule

    async def read(self, now: dt.datetime, *, refresh: bool = True) -> QuotaReading:
        """The current reading; ``refresh=False`` may answer from the last poll of a costly source."""


class CounterQuotaSource:
    """A quota counted where calls happen: the units the UsageCounter holds since the window started."""

    def __init__(self, service: str, counter, total: float, rule: ResetRule, unit: str) -> None:
        self.service = service
        self.unit = unit
        self.rule = rule
        self._counter = counter  # a UsageCounter, or None when no Redis is configured
        self._total = float(total)
        self._last_used: float | None = None

    async def read(self, now: dt.datetime, *, refresh: bool = True) -> QuotaReading:
        start, reset = window_start(self.rule, now), next_reset(self.rule, now)
        if self._counter is None:
            return QuotaReading(self.service, None, self._total, self.unit, start, reset, now)
        since = start if start is not None else now - dt.timedelta(days=30)
        try:
            used = await asyncio.to_thread(self._counter.used, self.service, since, now)
        except Exception as exc:
            _log.warning("Quota usage read failed", service=self.service,
                         error_code=SystemErrorCode.REDIS_CONNECTION_FAILED.value, reason=type(exc).__name__)
            return QuotaReading(self.service, self._last_used, self._total, self.unit, start, reset, now,
                                stale=True, error_code=SystemErrorCode.REDIS_CONNECTION_FAILED.value)
        self._last_used = used
        return QuotaReading(self.service, used, self._total, self.unit, start, reset, now)


class BalanceQuotaSource:
    """A quota read from the provider's balance API; between polls, the last balance answers."""

    def __init__(self, poller: BalancePoller, rule: ResetRule, unit: str = "credits") -> None:
        self.service = poller.service
        self.unit = unit
        self.rule = rule
        self.poller = poller
        self._polled = False

    async def read(self, now: dt.datetime, *, refresh: bool = True) -> QuotaReading:
        if refresh or not self._polled:
            await self.poller.poll()
            self._polled = True
        balance = self.poller.last
        return QuotaReading(self.service, balance.used, balance.total, self.unit, window_start(self.rule, now),
                            next_reset(self.rule, now), now, stale=balance.stale, error_code=balance.error_code)

"""Test helpers for users of the quota package: a quota source that answers what it is told.

Kept with the service rather than in ``otel_monitor.testing``: the quota package needs the service's dependencies
(its store is SQLAlchemy), and ``otel_monitor.testing`` must import where only the library is installed.
"""

from __future__ import annotations

import datetime as dt

from otel_monitor.monitor.quota.reset_schedule import ResetRule, next_reset, window_start
from otel_monitor.monitor.quota.usage import QuotaReading, apply_refusal

__all__ = ["FixedQuotaSource"]


class FixedQuotaSource:
    """A QuotaSource whose ``used`` / ``total`` are set by the test; counts its reads. ``refused_at`` set: the
    provider refused a call for lack of quota then, after any figures this source had (so it reads exceeded)."""

    def __init__(
        self,
        service: str,
        used: float | None,
        total: float | None,
        rule: ResetRule | None = None,
        unit: str = "units",
        *,
        stale: bool = False,
        error_code: str | None = None,
    ) -> None:
        self.service = service
        self.used = used
        self.total = total
        self.rule = rule or ResetRule.never()
        self.unit = unit
        self.stale = stale
        self.error_code = error_code
        self.refused_at: dt.datetime | None = None
        self.reads = 0

    async def read(self, now: dt.datetime, *, refresh: bool = True, stale_ok: bool = False) -> QuotaReading:
        self.reads += 1
        reading = QuotaReading(
            self.service,
            self.used,
            self.total,
            self.unit,
            window_start(self.rule, now),
            next_reset(self.rule, now),
            now,
            stale=self.stale,
            error_code=self.error_code,
        )
        return apply_refusal(reading, self.refused_at, None)

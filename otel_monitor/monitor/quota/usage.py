"""Current quota per provider from its source: the UsageCounter (Gemini, YouTube) or a balance poll (D-ID, Stability),
overruled by the provider's own refusal of a call for lack of quota."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, replace
from typing import Protocol

from otel_monitor.instrument.error_codes import ProviderFailure, SystemErrorCode, provider_error_code
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.quota.balances import BalancePoller
from otel_monitor.monitor.quota.reset_schedule import ResetRule, next_reset, window_start

__all__ = ["QuotaReading", "QuotaSource", "CounterQuotaSource", "BalanceQuotaSource", "apply_refusal"]

_log = StructuredLogger("otel_monitor.quota.usage")


@dataclass(frozen=True)
class QuotaReading:
    """What a source says now: ``used`` of ``total`` (None: unknown) in the window that ends at ``reset_date``;
    ``refused_at``: the provider's refusal that made it ``exceeded`` (None: the figures are the source's own)."""

    service: str
    used: float | None
    total: float | None
    unit: str
    window_start: dt.datetime | None
    reset_date: dt.datetime | None
    read_at: dt.datetime
    stale: bool = False
    error_code: str | None = None
    refused_at: dt.datetime | None = None
    # Credits that expire (D-ID): ``expires_at`` is the nearest expiry of unspent credits (None: none known).
    credits_expire: bool = False
    expires_at: dt.datetime | None = None


def apply_refusal(
    reading: QuotaReading, refused_at: dt.datetime | None, evidence_at: dt.datetime | None
) -> QuotaReading:
    """The reading once the provider refused a call for lack of quota at ``refused_at``: exceeded (used = total, or
    more if counted so), with ``<SERVICE>_QUOTA_EXCEEDED``. A refusal at or before ``evidence_at`` (when the
    figures were last read from the provider, or the window's start for counted quotas) is overtaken: the figures
    stand. Without a total nothing can be exceeded: only the error code says so."""
    if refused_at is None or (evidence_at is not None and refused_at <= evidence_at):
        return reading
    code = provider_error_code(reading.service, ProviderFailure.QUOTA_EXCEEDED)
    if reading.total is None:
        return replace(reading, error_code=code, refused_at=refused_at)
    used = reading.total if reading.used is None else max(reading.used, reading.total)
    return replace(reading, used=used, error_code=code, refused_at=refused_at)


class RefusalRecord(Protocol):
    """Where the backend records a provider's refusals for lack of quota (the UsageCounter)."""

    def refused_at(self, service: str) -> dt.datetime | None: ...


class UsageCounts(RefusalRecord, Protocol):
    """The units used per service as counted where calls happen (the UsageCounter), and its refusals."""

    def used(self, service: str, since: dt.datetime, until: dt.datetime | None = None) -> float: ...


class QuotaSource(Protocol):
    service: str
    unit: str
    rule: ResetRule

    async def read(self, now: dt.datetime, *, refresh: bool = True, stale_ok: bool = False) -> QuotaReading:
        """The current reading; ``refresh=False`` may answer from the last poll of a costly source while it is fresh,
        and with ``stale_ok`` also after (no provider request at all)."""


def _refused_at(refusals: RefusalRecord | None, service: str) -> dt.datetime | None:
    """The provider's last quota refusal as recorded in Redis by the backend (None: none, or unreadable)."""
    if refusals is None:
        return None
    try:
        return refusals.refused_at(service)
    except Exception as exc:  # Redis away: the source's own figures still stand
        _log.debug("Quota refusal read failed", service=service, reason=type(exc).__name__)
        return None


class CounterQuotaSource:
    """A quota counted where calls happen: the units the UsageCounter holds since the window started; a refusal by
    the provider within the window makes it exceeded until the window resets."""

    def __init__(self, service: str, counter: UsageCounts | None, total: float, rule: ResetRule, unit: str) -> None:
        self.service = service
        self.unit = unit
        self.rule = rule
        self._counter = counter  # a UsageCounter, or None when no Redis is configured
        self._total = float(total)
        self._last_used: float | None = None

    async def read(self, now: dt.datetime, *, refresh: bool = True, stale_ok: bool = False) -> QuotaReading:
        start, reset = window_start(self.rule, now), next_reset(self.rule, now)
        counter = self._counter
        if counter is None:
            return QuotaReading(self.service, None, self._total, self.unit, start, reset, now)
        since = start if start is not None else now - dt.timedelta(days=30)

        def count() -> tuple[float, dt.datetime | None]:
            used = counter.used(self.service, since, now)
            return used, _refused_at(counter, self.service)

        try:
            used, refused_at = await asyncio.to_thread(count)
        except Exception as exc:
            _log.warning(
                "Quota usage read failed",
                service=self.service,
                error_code=SystemErrorCode.REDIS_CONNECTION_FAILED.value,
                reason=type(exc).__name__,
            )
            return QuotaReading(
                self.service,
                self._last_used,
                self._total,
                self.unit,
                start,
                reset,
                now,
                stale=True,
                error_code=SystemErrorCode.REDIS_CONNECTION_FAILED.value,
            )
        self._last_used = used
        reading = QuotaReading(self.service, used, self._total, self.unit, start, reset, now)
        # A refusal after a reset time the backend's clock has passed is this window's; an older one is overtaken.
        return apply_refusal(reading, refused_at, start if start is not None else since)


class BalanceQuotaSource:
    """A quota read from the provider's balance API. Between polls the last balance answers while it is younger than
    ``stale_after`` seconds; an older one is re-read first (concurrent readers share one request), waiting at most
    ``wait`` seconds for it: past that the last balance answers, marked stale, and the re-read lands for the next
    reader. A refusal recorded after the balance was read makes the quota exceeded (``refusals``: the UsageCounter).
    """

    def __init__(
        self,
        poller: BalancePoller,
        rule: ResetRule,
        unit: str = "credits",
        *,
        refusals: RefusalRecord | None = None,
        stale_after: float | None = None,
        wait: float | None = None,
    ) -> None:
        self.service = poller.service
        self.unit = unit
        self.rule = rule
        self.poller = poller
        self.stale_after = stale_after
        self.wait = wait
        self._refusals = refusals
        self._attempted_at: dt.datetime | None = None
        self._inflight: asyncio.Future | None = None

    def due(self, now: dt.datetime) -> bool:
        """Whether the balance must be re-read before it answers: never read, or last tried ``stale_after`` ago."""
        if self._attempted_at is None:
            return True
        return self.stale_after is not None and (now - self._attempted_at).total_seconds() >= self.stale_after

    async def read(self, now: dt.datetime, *, refresh: bool = True, stale_ok: bool = False) -> QuotaReading:
        complete = True
        polling = self._inflight is not None and not self._inflight.done()
        if refresh or polling or (self.due(now) and not (stale_ok and self._attempted_at is not None)):
            complete = await self._poll(now, None if refresh else self.wait)
        balance = self.poller.last
        refused_at = (
            await asyncio.to_thread(_refused_at, self._refusals, self.service) if self._refusals is not None else None
        )
        reading = QuotaReading(
            self.service,
            balance.used,
            balance.total,
            self.unit,
            window_start(self.rule, now),
            next_reset(self.rule, now),
            now,
            stale=balance.stale or not complete,
            error_code=balance.error_code,
            credits_expire=self.poller.credits_expire,
            expires_at=balance.expires_at,
        )
        return apply_refusal(reading, refused_at, balance.fetched_at)

    async def cancel(self) -> None:
        """Ends a poll still under way (the service is stopping)."""
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)

    async def _poll(self, now: dt.datetime, wait: float | None) -> bool:
        """One poll shared by every concurrent reader; False if it did not finish within ``wait`` seconds."""
        if self._inflight is None or self._inflight.done():
            self._attempted_at = now
            self._inflight = asyncio.ensure_future(self.poller.poll())
        shared = asyncio.shield(self._inflight)
        if wait is None:
            await shared
            return True
        try:
            await asyncio.wait_for(shared, wait)
        except TimeoutError:
            _log.warning(
                "Quota balance re-read still running; the last balance answers",
                service=self.service,
                last_known_at=self.poller.last.fetched_at,
                wait_seconds=wait,
            )
            return False
        return True

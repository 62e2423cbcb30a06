"""The Dispatcher: delivers the outbox's due rows, each channel on its own worker, and writes each outcome back."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from typing import TypedDict, Unpack

from otel_monitor._utc_time import utc_now
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.delivery.outbox import LEASE_MARGIN_SECONDS, DeliveryStatus, Outbox, OutboxEntry
from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult, RetryPolicy
from otel_monitor.monitor.alerting.metrics import AlertingMetrics, NotificationResult
from otel_monitor.monitor.alerting.notification import Notifier
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.task_stopping import cancel_and_wait
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["Dispatcher", "DispatcherOptions"]


class DispatcherOptions(TypedDict, total=False):
    """The keyword options ``Dispatcher.from_config`` passes on, as ``Dispatcher`` defines them."""

    default_timeout: float
    clock: Callable[[], dt.datetime]
    poll_interval: float
    logger: StructuredLogger | None
    scrubber: SecretScrubber
    metrics: AlertingMetrics | None


# The ``result`` each outcome written to the outbox counts as.
_RESULTS = {
    DeliveryStatus.DELIVERED: NotificationResult.DELIVERED,
    DeliveryStatus.PENDING: NotificationResult.RETRY,
    DeliveryStatus.FAILED: NotificationResult.FAILED,
    DeliveryStatus.GIVEN_UP: NotificationResult.FAILED,
}


class _DeliveryLogFields(TypedDict):
    """What every log line about a delivery says of it."""

    channel: str
    notification_id: str
    attempts: int
    alert_priority: str
    error_code: str
    fingerprint: str
    alert_state: str


class Dispatcher:
    """Delivers due outbox rows, each channel on its own: its own worker, concurrency limit and timeout.

    2xx: delivered. 429/5xx/timeouts/refused: retried with exponential backoff until ``retry.max_age_seconds``
    after enqueueing, then given up. Other 4xx: failed at once. Failures and give-ups are logged at ERROR.
    """

    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[str, Notifier],
        *,
        retry: RetryPolicy = RetryPolicy(),
        timeouts: Mapping[str, float] | None = None,
        concurrency: Mapping[str, int] | None = None,
        default_timeout: float = 10.0,
        clock: Callable[[], dt.datetime] = utc_now,
        poll_interval: float = 1.0,
        logger: StructuredLogger | None = None,
        scrubber: SecretScrubber = default_scrubber,
        metrics: AlertingMetrics | None = None,
    ) -> None:
        self._outbox = outbox
        self._notifiers = dict(notifiers)
        self._retry = retry
        self._timeouts = dict(timeouts or {})
        self._concurrency = dict(concurrency or {})
        self._default_timeout = default_timeout
        self._clock = clock
        self._poll_interval = poll_interval
        self._logger = logger or StructuredLogger("otel_monitor.alerting.delivery")
        self._scrubber = scrubber
        self._metrics = metrics
        self._wakeups: dict[str, asyncio.Event] = {}

    @classmethod
    def from_config(
        cls,
        outbox: Outbox,
        config: DeliveryConfig,
        notifiers: Mapping[str, Notifier],
        **options: Unpack[DispatcherOptions],
    ) -> Dispatcher:
        return cls(
            outbox,
            notifiers,
            retry=config.retry,
            timeouts={name: c.timeout_seconds for name, c in config.channels.items()},
            concurrency={name: c.max_concurrency for name, c in config.channels.items()},
            **options,
        )

    def timeout(self, channel: str) -> float:
        return self._timeouts.get(channel, self._default_timeout)

    def lease_seconds(self, channel: str) -> float:
        """How long a claimed row of ``channel`` stays claimed, from the claim: its timeout and the lease margin."""
        return self.timeout(channel) + LEASE_MARGIN_SECONDS

    # -- one pass -------------------------------------------------------------------------------------------------
    async def deliver_due(self, channel: str) -> int:
        """Claims and delivers the due rows of one channel (up to its concurrency at once); returns how many."""
        limit = self._concurrency.get(channel, 4)
        entries = await self._outbox.executor.run(self._outbox.claim, channel, limit, self.lease_seconds(channel))
        await asyncio.gather(*(self._deliver(entry) for entry in entries))
        return len(entries)

    async def run_once(self) -> dict[str, int]:
        """One pass over every channel with pending rows, all channels at once; returns deliveries tried per channel."""
        channels = sorted(await self._outbox.executor.run(self._outbox.pending_channels))
        counts = await asyncio.gather(*(self.deliver_due(channel) for channel in channels))
        return dict(zip(channels, counts, strict=False))

    async def _attempt(self, notifier: Notifier, entry: OutboxEntry) -> DeliveryResult:
        timeout = self.timeout(entry.channel)
        try:
            return await asyncio.wait_for(notifier.notify(entry.notification), timeout)
        except TimeoutError:
            return DeliveryResult(ok=False, retryable=True, detail=f"timed out after {timeout:g}s")
        except Exception as exc:  # a notifier must not raise; if one does, its channel retries, others go on
            return DeliveryResult(
                ok=False, retryable=True, detail=f"{type(exc).__name__}: {self._scrubber.scrub_text(str(exc))[:200]}"
            )

    async def _deliver(self, entry: OutboxEntry) -> None:
        notifier = self._notifiers.get(entry.channel)
        if notifier is None:
            result = DeliveryResult(ok=False, retryable=False, detail=f"no channel named {entry.channel!r}")
        else:
            result = await self._attempt(notifier, entry)
        now = self._clock()
        detail = self._scrubber.scrub_text(result.detail)
        code = result.status_code
        if result.ok:
            await self._record(entry, status=DeliveryStatus.DELIVERED, now=now, status_code=code)
            return
        if not result.retryable:
            status = DeliveryStatus.FAILED
        elif (now - entry.created_at).total_seconds() >= self._retry.max_age_seconds:
            status = DeliveryStatus.GIVEN_UP
        else:
            retry_at = now + dt.timedelta(seconds=self._retry.backoff(entry.attempts))
            if await self._record(
                entry, status=DeliveryStatus.PENDING, now=now, next_attempt_at=retry_at, error=detail, status_code=code
            ):
                self._logger.warning(
                    "Alert delivery will be retried",
                    **self._fields(entry),
                    reason=detail,
                    retry_at=retry_at.isoformat(),
                )
            return
        if await self._record(entry, status=status, now=now, error=detail, status_code=code):
            self._logger.error("Alert delivery failed", **self._fields(entry), delivery_status=status, reason=detail)

    async def _record(
        self,
        entry: OutboxEntry,
        *,
        status: str,
        now: dt.datetime,
        next_attempt_at: dt.datetime | None = None,
        error: str | None = None,
        status_code: int | None = None,
    ) -> bool:
        if await self._outbox.executor.run(
            self._outbox.record,
            entry,
            status=status,
            now=now,
            next_attempt_at=next_attempt_at,
            error=error,
            status_code=status_code,
        ):
            if self._metrics is not None:
                self._metrics.notification(entry.channel, _RESULTS[status])
            return True
        # The attempt outlived its lease and another claim owns the row now: that claim's outcome stands.
        self._logger.warning(
            "Alert delivery outcome dropped: lease taken over", **self._fields(entry), delivery_status=status
        )
        return False

    @staticmethod
    def _fields(entry: OutboxEntry) -> _DeliveryLogFields:
        alert = entry.notification.alert
        return {
            "channel": entry.channel,
            "notification_id": entry.notification.id,
            "attempts": entry.attempts,
            "alert_priority": alert.priority.value,
            "error_code": alert.error_code,
            "fingerprint": alert.fingerprint,
            "alert_state": entry.notification.transition,
        }

    # -- running --------------------------------------------------------------------------------------------------
    def wake(self) -> None:
        """Tells the workers new rows were enqueued (call after Outbox.enqueue)."""
        for event in self._wakeups.values():
            event.set()

    async def run(self, stop: asyncio.Event) -> None:
        """One worker per configured channel until ``stop`` is set; a hanging channel only holds up itself."""
        self._wakeups = {channel: asyncio.Event() for channel in self._notifiers}
        workers = [
            asyncio.create_task(self._work(channel, stop), name=f"alert-delivery-{channel}")
            for channel in self._notifiers
        ]
        try:
            await stop.wait()
        finally:
            await cancel_and_wait(*workers)

    async def _work(self, channel: str, stop: asyncio.Event) -> None:
        wakeup = self._wakeups[channel]
        while not stop.is_set():
            wakeup.clear()
            try:
                if await self.deliver_due(channel):
                    continue
                due = await self._outbox.executor.run(self._outbox.next_due, channel)
            except Exception as exc:  # the store is down: log, wait, try again; never end the worker
                self._logger.error(
                    "Alert outbox unavailable",
                    channel=channel,
                    reason=self._scrubber.scrub_text(f"{type(exc).__name__}: {exc}")[:300],
                )
                due = None
            wait = self._poll_interval
            if due is not None:
                wait = min(wait, max((due - self._clock()).total_seconds(), 0.0))
            try:
                await asyncio.wait_for(wakeup.wait(), timeout=wait)
            except TimeoutError:
                pass

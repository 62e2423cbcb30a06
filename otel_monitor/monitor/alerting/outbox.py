"""Durable delivery: an outbox table of (notification, channel) rows and a Dispatcher that retries each channel alone.

Every row is claimed (attempt counted, lease set) in one commit before it is sent, and its result is written in one
commit after, so a process killed at any point leaves each row either done or due again: a notification is never
lost, and one that may have reached its receiver before the crash is sent at most once more, with the same
notification id, which the receivers that can dedupe (PagerDuty, Alertmanager, webhook) dedupe on.

Several Dispatchers may share one store: a claim is a conditional UPDATE that only takes a row still due and still
at the attempt count it was read with, so of two dispatchers reading the same row exactly one gets it (SQLite and
PostgreSQL alike). The lease is the row's ``next_attempt_at``: a dispatcher that dies holding it leaves the row due
again once the lease runs out, and the attempt count fences its late result, if any, out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otel_monitor.monitor.alerting.delivery_config import DeliveryConfig, RetryPolicy
from otel_monitor.monitor.alerting.model import Alert
from otel_monitor.monitor.alerting.notifiers.notification import DeliveryResult, Notification, Notifier, Transition
from otel_monitor.monitor.store.blocking_calls import BlockingExecutor
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber
from otel_monitor.monitor.store.engine import STORE_THREAD_WAIT_SECONDS, store_engine
from otel_monitor.monitor.store.migration import upgrade_to_head
from otel_monitor.monitor.store.schema import OutboxRow as _OutboxRow
from otel_monitor.logs.logger import StructuredLogger

__all__ = ["Outbox", "OutboxEntry", "Dispatcher", "DeliveryStatus", "IN_MEMORY_URL", "open_store", "SqlStore"]

IN_MEMORY_URL = "sqlite://"
# How long SQLite waits for another writer's lock before a write fails.
_SQLITE_BUSY_SECONDS = 30


def open_store(url) -> Engine:
    """An engine on the alerting store (SQLite or PostgreSQL), its schema brought to the latest migration."""
    engine = store_engine(url, sqlite_busy_seconds=_SQLITE_BUSY_SECONDS)
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


_UTC = dt.timezone.utc
# How long past its timeout a claimed delivery stays claimed before it counts as interrupted and is due again: its
# result's write may first wait that long for a thread of the store, then for SQLite's write lock. A shorter lease
# would let another Dispatcher claim, and send again, a row whose delivery is only waiting to be recorded.
_LEASE_MARGIN_SECONDS = float(STORE_THREAD_WAIT_SECONDS + _SQLITE_BUSY_SECONDS)
_MAX_DETAIL = 500

def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


class SqlStore:
    """A table of the alerting store: its engine opened on first use, calls serialised; they block, and async code
    runs them on ``executor``, the table's own threads (never the event loop's default executor, which a hanging
    database would otherwise fill, starving the health checks); ``executor.shutdown()`` after ``close()``."""

    def __init__(self, url=IN_MEMORY_URL, *, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self._url = url
        self._clock = clock
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self.executor = BlockingExecutor(f"otel-monitor-{type(self).__name__.lower()}",
                                         start_timeout=STORE_THREAD_WAIT_SECONDS)

    def _ready(self) -> Engine:
        if self._engine is None:
            self._engine = open_store(self._url)
        return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None


class DeliveryStatus:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent: the receiver refused it (other 4xx)
    GIVEN_UP = "given_up"  # retryable failures until max_age


@dataclass(frozen=True)
class OutboxEntry:
    """One row, detached from the database."""

    id: int
    notification: Notification
    channel: str
    status: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    done_at: dt.datetime | None
    last_error: str | None

    @classmethod
    def of(cls, row: _OutboxRow) -> OutboxEntry:
        return cls(row.id, Notification.from_json(row.body), row.channel, row.status, row.attempts, row.created_at,
                   row.next_attempt_at, row.done_at, row.last_error)


class Outbox(SqlStore):
    """The table of pending deliveries, in SQLite or PostgreSQL by URL (the quota store's kind of database).

    The schema is brought to the latest migration on first use. Calls block;
    the Dispatcher runs them on ``executor``. Any number of Dispatchers per store: each row is claimed by one at a
    time. ``clock`` dates the rows, claims and leases.
    """

    def __init__(self, url: str = IN_MEMORY_URL, *, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        super().__init__(make_url(url), clock=clock)
        self.name = self._url.render_as_string(hide_password=True)

    # -- writing --------------------------------------------------------------------------------------------------
    def enqueue(self, alert: Alert, transition: Transition, channels: Iterable[str]) -> tuple[str, ...]:
        """Queues the alert's transition for each channel; returns the channels it was not already queued for."""
        return self.enqueue_notification(Notification.of(alert, transition), channels)

    def enqueue_notification(self, notification: Notification, channels: Iterable[str]) -> tuple[str, ...]:
        now = self._clock()
        added: list[str] = []
        with self._lock, Session(self._ready()) as session:
            for channel in dict.fromkeys(channels):
                try:
                    with session.begin():
                        session.add(_OutboxRow(
                            notification_id=notification.id, channel=channel,
                            fingerprint=notification.alert.fingerprint,
                            priority=notification.alert.priority.value, transition=notification.transition,
                            body=notification.to_json(), status=DeliveryStatus.PENDING, attempts=0,
                            created_at=now, next_attempt_at=now))
                    added.append(channel)
                except IntegrityError:  # already queued for this channel: never twice
                    session.rollback()
        return tuple(added)

    def claim(self, channel: str, limit: int, lease_seconds: float) -> list[OutboxEntry]:
        """Takes up to ``limit`` due rows of ``channel``: counts the attempt and leases them, in one commit.

        Due and leased as of the clock read once this call holds the store (not when it was asked for: it may have
        waited for a thread or the lock), so the lease is ``lease_seconds`` from the claim. Only the rows this call
        won are returned: a row another dispatcher claimed since it was read is skipped.
        """
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            now = self._clock()
            lease_until = now + dt.timedelta(seconds=lease_seconds)
            due = (_OutboxRow.channel == channel, _OutboxRow.status == DeliveryStatus.PENDING,
                   _OutboxRow.next_attempt_at <= now)
            # SKIP LOCKED (PostgreSQL; SQLite has no row locks) only spares waiting on rows another claim holds.
            seen = session.execute(
                select(_OutboxRow.id, _OutboxRow.attempts).where(*due)
                .order_by(_OutboxRow.next_attempt_at, _OutboxRow.id).limit(limit)
                .with_for_update(skip_locked=True)).all()
            won = [row_id for row_id, attempts in seen if session.execute(
                update(_OutboxRow).where(_OutboxRow.id == row_id, _OutboxRow.attempts == attempts, *due)
                .values(attempts=attempts + 1, last_attempt_at=now, next_attempt_at=lease_until)).rowcount == 1]
            rows = {row.id: row for row in session.scalars(select(_OutboxRow).where(_OutboxRow.id.in_(won)))}
            return [OutboxEntry.of(rows[row_id]) for row_id in won]

    def record(self, entry: OutboxEntry, *, status: str, now: dt.datetime,
               next_attempt_at: dt.datetime | None = None, error: str | None = None) -> bool:
        """Writes the outcome of the claimed attempt ``entry`` in one commit: done (delivered/failed/given up) or
        due again later. False, and nothing written, when the lease ran out and the row was claimed again since."""
        values: dict = {"status": status, "last_error": error[:_MAX_DETAIL] if error else None}
        if status == DeliveryStatus.PENDING:
            values["next_attempt_at"] = next_attempt_at or now
        else:
            values["done_at"] = now
        with self._lock, Session(self._ready()) as session, session.begin():
            return session.execute(update(_OutboxRow).where(
                _OutboxRow.id == entry.id, _OutboxRow.attempts == entry.attempts,
                _OutboxRow.status == DeliveryStatus.PENDING).values(**values)).rowcount == 1

    # -- reading --------------------------------------------------------------------------------------------------
    def entries(self, *, status: str | None = None, channel: str | None = None) -> list[OutboxEntry]:
        query = select(_OutboxRow).order_by(_OutboxRow.id)
        if status is not None:
            query = query.where(_OutboxRow.status == status)
        if channel is not None:
            query = query.where(_OutboxRow.channel == channel)
        with self._lock, Session(self._ready()) as session:
            return [OutboxEntry.of(row) for row in session.scalars(query).all()]

    def pending_channels(self) -> set[str]:
        with self._lock, Session(self._ready()) as session:
            return set(session.scalars(select(_OutboxRow.channel).where(
                _OutboxRow.status == DeliveryStatus.PENDING).distinct()).all())

    def next_due(self, channel: str) -> dt.datetime | None:
        """When the earliest pending row of ``channel`` is due; None when nothing is pending."""
        with self._lock, Session(self._ready()) as session:
            return session.scalar(select(func.min(_OutboxRow.next_attempt_at)).where(
                _OutboxRow.channel == channel, _OutboxRow.status == DeliveryStatus.PENDING))


class Dispatcher:
    """Delivers due outbox rows, each channel on its own: its own worker, concurrency limit and timeout.

    2xx: delivered. 429/5xx/timeouts/refused: retried with exponential backoff until ``retry.max_age_seconds``
    after enqueueing, then given up. Other 4xx: failed at once. Failures and give-ups are logged at ERROR.
    """

    def __init__(self, outbox: Outbox, notifiers: Mapping[str, Notifier], *, retry: RetryPolicy = RetryPolicy(),
                 timeouts: Mapping[str, float] | None = None, concurrency: Mapping[str, int] | None = None,
                 default_timeout: float = 10.0, clock: Callable[[], dt.datetime] = _utcnow,
                 poll_interval: float = 1.0, logger: StructuredLogger | None = None,
                 scrubber: SecretScrubber = default_scrubber) -> None:
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
        self._wakeups: dict[str, asyncio.Event] = {}

    @classmethod
    def from_config(cls, outbox: Outbox, config: DeliveryConfig, notifiers: Mapping[str, Notifier],
                    **options) -> Dispatcher:
        return cls(outbox, notifiers, retry=config.retry,
                   timeouts={name: c.timeout_seconds for name, c in config.channels.items()},
                   concurrency={name: c.max_concurrency for name, c in config.channels.items()}, **options)

    def timeout(self, channel: str) -> float:
        return self._timeouts.get(channel, self._default_timeout)

    def lease_seconds(self, channel: str) -> float:
        """How long a claimed row of ``channel`` stays claimed, from the claim: its timeout and the lease margin."""
        return self.timeout(channel) + _LEASE_MARGIN_SECONDS

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
        return dict(zip(channels, counts))

    async def _attempt(self, notifier: Notifier, entry: OutboxEntry) -> DeliveryResult:
        timeout = self.timeout(entry.channel)
        try:
            return await asyncio.wait_for(notifier.notify(entry.notification), timeout)
        except TimeoutError:
            return DeliveryResult(ok=False, retryable=True, detail=f"timed out after {timeout:g}s")
        except Exception as exc:  # a notifier must not raise; if one does, its channel retries, others go on
            return DeliveryResult(ok=False, retryable=True,
                                  detail=f"{type(exc).__name__}: {self._scrubber.scrub_text(str(exc))[:200]}")

    async def _deliver(self, entry: OutboxEntry) -> None:
        notifier = self._notifiers.get(entry.channel)
        if notifier is None:
            result = DeliveryResult(ok=False, retryable=False, detail=f"no channel named {entry.channel!r}")
        else:
            result = await self._attempt(notifier, entry)
        now = self._clock()
        detail = self._scrubber.scrub_text(result.detail)
        if result.ok:
            await self._record(entry, status=DeliveryStatus.DELIVERED, now=now)
            return
        if not result.retryable:
            status = DeliveryStatus.FAILED
        elif (now - entry.created_at).total_seconds() >= self._retry.max_age_seconds:
            status = DeliveryStatus.GIVEN_UP
        else:
            retry_at = now + dt.timedelta(seconds=self._retry.backoff(entry.attempts))
            if await self._record(entry, status=DeliveryStatus.PENDING, now=now, next_attempt_at=retry_at,
                                  error=detail):
                self._logger.warning("Alert delivery will be retried", **self._fields(entry), reason=detail,
                                     retry_at=retry_at.isoformat())
            return
        if await self._record(entry, status=status, now=now, error=detail):
            self._logger.error("Alert delivery failed", **self._fields(entry), delivery_status=status,
                               reason=detail)

    async def _record(self, entry: OutboxEntry, **outcome) -> bool:
        if await self._outbox.executor.run(self._outbox.record, entry, **outcome):
            return True
        # The attempt outlived its lease and another claim owns the row now: that claim's outcome stands.
        self._logger.warning("Alert delivery outcome dropped: lease taken over", **self._fields(entry),
                             delivery_status=outcome["status"])
        return False

    @staticmethod
    def _fields(entry: OutboxEntry) -> dict[str, object]:
        alert = entry.notification.alert
        return {"channel": entry.channel, "notification_id": entry.notification.id, "attempts": entry.attempts,
                "alert_priority": alert.priority.value, "error_code": alert.error_code,
                "fingerprint": alert.fingerprint, "alert_state": entry.notification.transition}

    # -- running --------------------------------------------------------------------------------------------------
    def wake(self) -> None:
        """Tells the workers new rows were enqueued (call after Outbox.enqueue)."""
        for event in self._wakeups.values():
            event.set()

    async def run(self, stop: asyncio.Event) -> None:
        """One worker per configured channel until ``stop`` is set; a hanging channel only holds up itself."""
        self._wakeups = {channel: asyncio.Event() for channel in self._notifiers}
        workers = [asyncio.create_task(self._work(channel, stop), name=f"alert-delivery-{channel}")
                   for channel in self._notifiers]
        try:
            await stop.wait()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, channel: str, stop: asyncio.Event) -> None:
        wakeup = self._wakeups[channel]
        while not stop.is_set():
            wakeup.clear()
            try:
                if await self.deliver_due(channel):
                    continue
                due = await self._outbox.executor.run(self._outbox.next_due, channel)
            except Exception as exc:  # the store is down: log, wait, try again; never end the worker
                self._logger.error("Alert outbox unavailable", channel=channel,
                                   reason=self._scrubber.scrub_text(f"{type(exc).__name__}: {exc}")[:300])
                due = None
            wait = self._poll_interval
            if due is not None:
                wait = min(wait, max((due - self._clock()).total_seconds(), 0.0))
            try:
                await asyncio.wait_for(wakeup.wait(), timeout=wait)
            except TimeoutError:
                pass

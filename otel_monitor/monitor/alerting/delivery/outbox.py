"""Durable delivery: an outbox table of (notification, channel) rows, delivered by the Dispatcher channel by channel.

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

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.engine import URL, CursorResult, Engine, Result, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otel_monitor._utc_time import utc_now
from otel_monitor.monitor.alerting.delivery.ledger import AttemptResult, DeliveryAttempt, attempts_of
from otel_monitor.monitor.alerting.model import Alert, Transition
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.store.blocking_calls import BlockingExecutor
from otel_monitor.monitor.store.engine import STORE_THREAD_WAIT_SECONDS, store_engine
from otel_monitor.monitor.store.migration import upgrade_to_head
from otel_monitor.monitor.store.schema import DeliveryAttemptRow as _DeliveryAttemptRow
from otel_monitor.monitor.store.schema import OutboxRow as _OutboxRow

__all__ = [
    "Outbox",
    "OutboxEntry",
    "Delivery",
    "DeliveryStatus",
    "DELIVERY_STATUSES",
    "IN_MEMORY_URL",
    "LEASE_MARGIN_SECONDS",
    "open_store",
    "SqlStore",
]

IN_MEMORY_URL = "sqlite://"
# How long SQLite waits for another writer's lock before a write fails.
_SQLITE_BUSY_SECONDS = 30


def open_store(url: URL | str) -> Engine:
    """An engine on the alerting store (SQLite or PostgreSQL), its schema brought to the latest migration."""
    engine = store_engine(url, sqlite_busy_seconds=_SQLITE_BUSY_SECONDS)
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


# How long past its timeout a claimed delivery stays claimed before it counts as interrupted and is due again: its
# result's write may first wait that long for a thread of the store, then for SQLite's write lock. A shorter lease
# would let another Dispatcher claim, and send again, a row whose delivery is only waiting to be recorded.
LEASE_MARGIN_SECONDS = float(STORE_THREAD_WAIT_SECONDS + _SQLITE_BUSY_SECONDS)
_MAX_DETAIL = 500


def _rows_updated(result: Result[*tuple[Any, ...]]) -> int:
    """The rows an UPDATE changed: its result is a CursorResult, though Session.execute is typed as a plain Result."""
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount


class SqlStore:
    """A table of the alerting store: its engine opened on first use, calls serialised; they block, and async code
    runs them on ``executor``, the table's own threads (never the event loop's default executor, which a hanging
    database would otherwise fill, starving the health checks); ``executor.shutdown()`` after ``close()``."""

    def __init__(self, url: URL | str = IN_MEMORY_URL, *, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self._url = url
        self._clock = clock
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self.executor = BlockingExecutor(
            f"otel-monitor-{type(self).__name__.lower()}", start_timeout=STORE_THREAD_WAIT_SECONDS
        )

    @property
    def clock(self) -> Callable[[], dt.datetime]:
        """What dates the table's rows."""
        return self._clock

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


DELIVERY_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.GIVEN_UP)
# What an attempt that leaves its row in a status came to (every other status ends the delivery: failed).
_ATTEMPT_RESULTS = {DeliveryStatus.DELIVERED: AttemptResult.OK, DeliveryStatus.PENDING: AttemptResult.RETRY}


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
        return cls(
            row.id,
            Notification.from_json(row.body),
            row.channel,
            row.status,
            row.attempts,
            row.created_at,
            row.next_attempt_at,
            row.done_at,
            row.last_error,
        )


@dataclass(frozen=True)
class Delivery:
    """One outbox row with its finished attempts (the ledger's), oldest first."""

    entry: OutboxEntry
    attempts: tuple[DeliveryAttempt, ...]


class Outbox(SqlStore):
    """The table of pending deliveries, in SQLite or PostgreSQL by URL (the quota store's kind of database).

    The schema is brought to the latest migration on first use. Calls block;
    the Dispatcher runs them on ``executor``. Any number of Dispatchers per store: each row is claimed by one at a
    time. ``clock`` dates the rows, claims and leases.
    """

    def __init__(self, url: str = IN_MEMORY_URL, *, clock: Callable[[], dt.datetime] = utc_now) -> None:
        parsed = make_url(url)
        super().__init__(parsed, clock=clock)
        self.name = parsed.render_as_string(hide_password=True)

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
                        session.add(
                            _OutboxRow(
                                notification_id=notification.id,
                                channel=channel,
                                fingerprint=notification.alert.fingerprint,
                                priority=notification.alert.priority.value,
                                transition=notification.transition,
                                body=notification.to_json(),
                                status=DeliveryStatus.PENDING,
                                attempts=0,
                                created_at=now,
                                next_attempt_at=now,
                            )
                        )
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
            due = (
                _OutboxRow.channel == channel,
                _OutboxRow.status == DeliveryStatus.PENDING,
                _OutboxRow.next_attempt_at <= now,
            )
            # SKIP LOCKED (PostgreSQL; SQLite has no row locks) only spares waiting on rows another claim holds.
            seen = session.execute(
                select(_OutboxRow.id, _OutboxRow.attempts)
                .where(*due)
                .order_by(_OutboxRow.next_attempt_at, _OutboxRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            won = [
                row_id
                for row_id, attempts in seen
                if _rows_updated(
                    session.execute(
                        update(_OutboxRow)
                        .where(_OutboxRow.id == row_id, _OutboxRow.attempts == attempts, *due)
                        .values(attempts=attempts + 1, last_attempt_at=now, next_attempt_at=lease_until)
                    )
                )
                == 1
            ]
            rows = {row.id: row for row in session.scalars(select(_OutboxRow).where(_OutboxRow.id.in_(won)))}
            return [OutboxEntry.of(rows[row_id]) for row_id in won]

    def record(
        self,
        entry: OutboxEntry,
        *,
        status: str,
        now: dt.datetime,
        next_attempt_at: dt.datetime | None = None,
        error: str | None = None,
        status_code: int | None = None,
    ) -> bool:
        """Writes the outcome of the claimed attempt ``entry`` in one commit: done (delivered/failed/given up) or
        due again later, and the attempt in the ledger. False, and nothing written, when the lease ran out and the
        row was claimed again since."""
        error = error[:_MAX_DETAIL] if error else None
        values: dict = {"status": status, "last_error": error}
        if status == DeliveryStatus.PENDING:
            values["next_attempt_at"] = next_attempt_at or now
        else:
            values["done_at"] = now
        with self._lock, Session(self._ready()) as session, session.begin():
            updated = session.execute(
                update(_OutboxRow)
                .where(
                    _OutboxRow.id == entry.id,
                    _OutboxRow.attempts == entry.attempts,
                    _OutboxRow.status == DeliveryStatus.PENDING,
                )
                .values(**values)
            )
            if _rows_updated(updated) != 1:
                return False
            session.add(
                _DeliveryAttemptRow(
                    outbox_id=entry.id,
                    attempt=entry.attempts,
                    attempted_at=now,
                    result=_ATTEMPT_RESULTS.get(status, AttemptResult.FAILED),
                    status_code=status_code,
                    error=error,
                )
            )
            return True

    # -- reading --------------------------------------------------------------------------------------------------
    def entries(self, *, status: str | None = None, channel: str | None = None) -> list[OutboxEntry]:
        query = select(_OutboxRow).order_by(_OutboxRow.id)
        if status is not None:
            query = query.where(_OutboxRow.status == status)
        if channel is not None:
            query = query.where(_OutboxRow.channel == channel)
        with self._lock, Session(self._ready()) as session:
            return [OutboxEntry.of(row) for row in session.scalars(query).all()]

    def deliveries(
        self,
        *,
        channel: str | None = None,
        status: str | None = None,
        since: dt.datetime | None = None,
        notification_ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        """The ledger: the rows matching every filter given (``since``: queued at or after), newest first, each with
        its attempts."""
        query = select(_OutboxRow).order_by(_OutboxRow.id.desc()).limit(limit)
        if channel is not None:
            query = query.where(_OutboxRow.channel == channel)
        if status is not None:
            query = query.where(_OutboxRow.status == status)
        if since is not None:
            query = query.where(_OutboxRow.created_at >= since)
        if notification_ids is not None:
            query = query.where(_OutboxRow.notification_id.in_(list(notification_ids)))
        with self._lock, Session(self._ready()) as session:
            entries = [OutboxEntry.of(row) for row in session.scalars(query).all()]
            attempts = attempts_of(session, [entry.id for entry in entries])
        return [Delivery(entry, tuple(attempts[entry.id])) for entry in entries]

    def pending_channels(self) -> set[str]:
        with self._lock, Session(self._ready()) as session:
            return set(
                session.scalars(
                    select(_OutboxRow.channel).where(_OutboxRow.status == DeliveryStatus.PENDING).distinct()
                ).all()
            )

    def pending_depth(self) -> tuple[int, dt.datetime | None]:
        """How many rows are pending, and when the oldest of them was queued (None when none)."""
        with self._lock, Session(self._ready()) as session:
            count, oldest = session.execute(
                select(func.count(_OutboxRow.id), func.min(_OutboxRow.created_at)).where(
                    _OutboxRow.status == DeliveryStatus.PENDING
                )
            ).one()
            return count, oldest

    def next_due(self, channel: str) -> dt.datetime | None:
        """When the earliest pending row of ``channel`` is due; None when nothing is pending."""
        with self._lock, Session(self._ready()) as session:
            return session.scalar(
                select(func.min(_OutboxRow.next_attempt_at)).where(
                    _OutboxRow.channel == channel, _OutboxRow.status == DeliveryStatus.PENDING
                )
            )

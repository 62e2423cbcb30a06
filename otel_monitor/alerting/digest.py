"""The P1 hourly digest: every P1 transition of an hour, kept in the store, sent as ONE notification at its close."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
from collections.abc import Awaitable, Callable

from sqlalchemy import Integer, String, Text, UniqueConstraint, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from otel_monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.alerting.notifiers.notification import Notification, Transition
from otel_monitor.alerting.outbox import SqlStore, metadata
from otel_monitor.store_types import UTCDateTime
from otel_monitor.structured_logging import StructuredLogger

__all__ = ["HourlyDigest", "DigestStore", "digest_notification", "digest_entry", "DIGEST_ERROR_CODE",
           "DIGEST_MESSAGE"]

_UTC = dt.timezone.utc
DIGEST_ERROR_CODE = "P1_ALERT_DIGEST"
DIGEST_MESSAGE = "P1 Alert digest"
_HOUR = dt.timedelta(hours=1)

Send = Callable[[Notification], "Awaitable[object] | object"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


def _hour_start(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(_UTC).replace(minute=0, second=0, microsecond=0)


def digest_entry(notification: Notification) -> dict[str, object]:
    """One alert of the digest: status, error_code, summary and the fields every channel carries."""
    alert = notification.alert
    return {"status": notification.transition, "error_code": alert.error_code, "summary": alert.summary,
            "rule": alert.rule, "fingerprint": alert.fingerprint, **notification.details()}


def digest_notification(period_start: dt.datetime, entries: list[Notification]) -> Notification:
    """The digest of the hour starting at ``period_start``: its id is the hour, so it is queued once per channel."""
    start = _hour_start(period_start)
    firing = sum(1 for entry in entries if not entry.resolved)
    services = sorted({entry.alert.service for entry in entries if entry.alert.service})
    codes = list(dict.fromkeys(entry.alert.error_code for entry in entries))
    standing = Alert(
        fingerprint=f"p1-digest-{start:%Y%m%dT%H}",
        rule="p1_digest",
        priority=Priority.P1,
        state=AlertState.FIRING,
        error_code=DIGEST_ERROR_CODE,
        summary=f"{len(entries)} P1 alert transitions between {start:%Y-%m-%d %H:%M} and "
                f"{start + _HOUR:%H:%M} UTC ({firing} firing, {len(entries) - firing} resolved)",
        action_required="; ".join(f"{entry.alert.error_code}: {entry.alert.action_required}"
                                  for entry in entries if not entry.resolved) or "None: every alert resolved",
        runbook=", ".join(codes),
        labels={"service": ",".join(services)} if services else {},
        starts_at=start,
        ends_at=start + _HOUR,
    )
    digest_id = hashlib.sha256(f"p1-digest|{start.isoformat()}".encode()).hexdigest()[:32]
    return Notification(digest_id, "firing", standing, digest=tuple(entries))


class _Base(DeclarativeBase):
    metadata = metadata


class _DigestEntryRow(_Base):
    __tablename__ = "alert_digest_entries"
    __table_args__ = (UniqueConstraint("period_start", "notification_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    notification_id: Mapped[str] = mapped_column(String(64), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class DigestStore(SqlStore):
    """The ``alert_digest_entries`` table, in the outbox's database (same URL): the P1 transitions of the hours
    whose digest is not queued yet, so a restart loses none of them."""

    def add(self, period_start: dt.datetime, notification: Notification) -> bool:
        """Keeps the transition in its hour; False when the hour already has it."""
        try:
            with self._lock, Session(self._ready()) as session, session.begin():
                session.add(_DigestEntryRow(period_start=period_start, notification_id=notification.id,
                                            body=notification.to_json(), added_at=self._clock()))
        except IntegrityError:
            return False
        return True

    def hours_before(self, end: dt.datetime) -> dict[dt.datetime, list[Notification]]:
        """The kept transitions of every hour starting before ``end``, oldest hour first, each in the order added."""
        query = (select(_DigestEntryRow).where(_DigestEntryRow.period_start < end)
                 .order_by(_DigestEntryRow.period_start, _DigestEntryRow.id))
        hours: dict[dt.datetime, list[Notification]] = {}
        with self._lock, Session(self._ready()) as session:
            for row in session.scalars(query).all():
                hours.setdefault(row.period_start, []).append(Notification.from_json(row.body))
        return hours

    def count(self) -> int:
        with self._lock, Session(self._ready()) as session:
            return session.scalar(select(func.count()).select_from(_DigestEntryRow)) or 0

    def forget(self, period_start: dt.datetime) -> None:
        """Drops the hour's transitions (its digest is queued)."""
        with self._lock, Session(self._ready()) as session, session.begin():
            session.execute(delete(_DigestEntryRow).where(_DigestEntryRow.period_start == period_start))


class HourlyDigest:
    """Collects P1 transitions by the (UTC) hour they happen in; ``flush()`` sends each closed hour's digest.

    Each closed hour with at least one P1 transition gives one notification: logged at WARNING in the spec's P1
    shape and handed to ``send`` (sync or async; the service enqueues it for the P1 channels). The same alert
    transition twice in an hour counts once. Non-P1 alerts are ignored. Transitions are kept in ``store`` until
    their hour's digest is handed over, so a new HourlyDigest on the same store resumes the open and unsent hours.
    The digest's id is its hour: handed over again after a crash, the outbox does not queue it twice.
    ``add`` and ``pending`` block on the store; ``flush`` runs its store calls on the store's executor.
    """

    def __init__(self, send: Send, *, store: DigestStore | None = None, clock: Callable[[], dt.datetime] = _utcnow,
                 logger: StructuredLogger | None = None) -> None:
        self._send = send
        self._clock = clock
        self._logger = logger or StructuredLogger("otel_monitor.alerts")
        self.store = store or DigestStore(clock=clock)

    def add(self, alert: Alert, transition: Transition | None = None) -> bool:
        """Records one transition in the current hour; False when it is not a P1 alert or already recorded."""
        if alert.priority is not Priority.P1:
            return False
        return self.store.add(_hour_start(self._clock()), Notification.of(alert, transition))

    def pending(self) -> int:
        """Transitions recorded and not yet sent."""
        return self.store.count()

    async def flush(self) -> list[Notification]:
        """Sends the digest of every hour that has closed by now (oldest first); returns what was sent."""
        hours = await self.store.executor.run(self.store.hours_before, _hour_start(self._clock()))
        sent: list[Notification] = []
        for start, entries in hours.items():
            digest = digest_notification(start, entries)
            self._log(digest)
            result = self._send(digest)
            if inspect.isawaitable(result):
                await result
            # Forgotten only once handed over: a failing send leaves the hour to the next flush.
            await self.store.executor.run(self.store.forget, start)
            sent.append(digest)
        return sent

    def seconds_to_next_hour(self) -> float:
        now = self._clock().astimezone(_UTC)
        return max((_hour_start(now) + _HOUR - now).total_seconds(), 0.0)

    async def run(self, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                  grace_seconds: float = 1.0) -> None:
        """Flushes at once (hours a restart left unsent), then just after every hour boundary until cancelled; a
        failing send is logged and retried next hour."""
        while True:
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive one bad hand-over
                self._logger.error("P1 digest hand-over failed", error_type=type(exc).__name__)
            await sleep(self.seconds_to_next_hour() + grace_seconds)

    def _log(self, digest: Notification) -> None:
        alert = digest.alert
        self._logger.warning(DIGEST_MESSAGE, alert_priority=Priority.P1.value, error_code=alert.error_code,
                             notification_id=digest.id,
                             details={"period_start": alert.starts_at.isoformat(),
                                      "period_end": alert.ends_at.isoformat(),
                                      "count": len(digest.digest),
                                      "alerts": [digest_entry(entry) for entry in digest.digest]})

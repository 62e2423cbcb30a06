"""The P1 digest: every P1 transition of a digest period (30 minutes by default), kept in the store, sent as ONE
notification at the period's close."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otel_monitor._utc_time import utc_now
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.delivery.outbox import SqlStore
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority, Transition
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.store.schema import DigestEntryRow as _DigestEntryRow
from otel_monitor.monitor.store.schema import DigestSentPeriodRow as _DigestSentPeriodRow

__all__ = [
    "P1Digest",
    "DigestStore",
    "DigestPeriod",
    "digest_notification",
    "digest_entry",
    "period_start",
    "DEFAULT_DIGEST_PERIOD",
    "DIGEST_ERROR_CODE",
    "DIGEST_MESSAGE",
]

_UTC = dt.UTC
DIGEST_ERROR_CODE = "P1_ALERT_DIGEST"
DIGEST_MESSAGE = "P1 Alert digest"
_DAY = dt.timedelta(days=1)
# A P1 must reach a person within the hour of its condition starting: the worst case is the rule's detection delay
# (evaluation interval, quota polls, export and scrape) plus the digest period, so the period is well under an hour
# (docs/ALERT_TIMING.md has the table). Periods divide the day, so they start at the same times every day.
DEFAULT_DIGEST_PERIOD = dt.timedelta(minutes=30)
# How long a period is remembered as sent, so transitions recorded for it later are labelled as coming after its
# digest.
_SENT_PERIODS_KEPT = dt.timedelta(days=1)
# P1 transitions held in memory while the store refuses them; past this the oldest are dropped (and logged).
_HELD_LIMIT = 1000

Send = Callable[[Notification], "Awaitable[object] | object"]


def period_start(moment: dt.datetime, period: dt.timedelta = DEFAULT_DIGEST_PERIOD) -> dt.datetime:
    """The start of the digest period holding ``moment``: periods tile the UTC day from midnight."""
    moment = moment.astimezone(_UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + period * ((moment - midnight) // period)


def check_period(period: dt.timedelta) -> dt.timedelta:
    """``period`` if it is 1 to 60 whole minutes and divides the day; ValueError otherwise."""
    if (
        period % dt.timedelta(minutes=1)
        or not dt.timedelta(minutes=1) <= period <= dt.timedelta(hours=1)
        or _DAY % period
    ):
        raise ValueError(f"a digest period must be 1 to 60 whole minutes dividing the day, not {period}")
    return period


def digest_entry(notification: Notification) -> dict[str, object]:
    """One alert of the digest: status, error_code, summary and the fields every channel carries."""
    alert = notification.alert
    return {
        "status": notification.transition,
        "error_code": alert.error_code,
        "summary": alert.summary,
        "rule": alert.rule,
        "fingerprint": alert.fingerprint,
        **notification.details(),
    }


def digest_notification(
    start: dt.datetime,
    entries: list[Notification],
    *,
    follow_up: bool = False,
    period: dt.timedelta = DEFAULT_DIGEST_PERIOD,
) -> Notification:
    """The digest of ``entries``, P1 transitions of the digest period starting at ``start``.

    Its id is the period and the ids of its entries: the same entries handed over again (a crash before they were
    forgotten) make the same id, which the outbox queues once per channel; other entries of the same period make
    another digest. ``follow_up`` says the period's digest was sent already and these transitions were recorded
    after it (a store write that waited past the flush, a monitor whose clock lags, a store that was down): an
    operator holding two digests for 10:00-10:30 must see that the second adds to the first, so its summary names
    the same period and says "more ... recorded after that period's digest" (nothing of the first is repeated or
    withdrawn), and its fingerprint is its own, so receivers that fold alerts by fingerprint (Alertmanager,
    PagerDuty) keep both.
    """
    start = period_start(start, period)
    firing = sum(1 for entry in entries if not entry.resolved)
    services = sorted({entry.alert.service for entry in entries if entry.alert.service})
    codes = list(dict.fromkeys(entry.alert.error_code for entry in entries))
    key = "|".join(["p1-digest", start.isoformat(), *sorted(entry.id for entry in entries)])
    digest_id = hashlib.sha256(key.encode()).hexdigest()[:32]
    between = f"between {start:%Y-%m-%d %H:%M} and {start + period:%H:%M} UTC"
    counts = f"({firing} firing, {len(entries) - firing} resolved)"
    if follow_up:
        fingerprint = f"p1-digest-{start:%Y%m%dT%H%M}-{digest_id[:8]}"
        summary = f"{len(entries)} more P1 alert transitions {between}, recorded after that period's digest {counts}"
    else:
        fingerprint = f"p1-digest-{start:%Y%m%dT%H%M}"
        summary = f"{len(entries)} P1 alert transitions {between} {counts}"
    standing = Alert(
        fingerprint=fingerprint,
        rule="p1_digest",
        priority=Priority.P1,
        state=AlertState.FIRING,
        error_code=DIGEST_ERROR_CODE,
        summary=summary,
        action_required="; ".join(
            f"{entry.alert.error_code}: {entry.alert.action_required}" for entry in entries if not entry.resolved
        )
        or "None: every alert resolved",
        runbook=", ".join(codes),
        labels={"service": ",".join(services)} if services else {},
        starts_at=start,
        ends_at=start + period,
    )
    return Notification(digest_id, "firing", standing, digest=tuple(entries))


@dataclass(frozen=True)
class DigestPeriod:
    """The kept transitions of one period as read for its digest: ``row_ids`` are what ``forget`` drops once it is
    queued; ``follow_up`` when a digest of this period was queued before (these were recorded after it)."""

    start: dt.datetime
    row_ids: tuple[int, ...]
    entries: list[Notification]
    follow_up: bool


class DigestStore(SqlStore):
    """The ``alert_digest_entries`` table, in the outbox's database (same URL): the P1 transitions of the periods
    whose digest is not queued yet, so a restart loses none of them."""

    def add(self, period_start: dt.datetime, notification: Notification) -> bool:
        """Keeps the transition in its period; False when the period already has it."""
        try:
            with self._lock, Session(self._ready()) as session, session.begin():
                session.add(
                    _DigestEntryRow(
                        period_start=period_start,
                        notification_id=notification.id,
                        body=notification.to_json(),
                        added_at=self._clock(),
                    )
                )
        except IntegrityError:
            return False
        return True

    def periods_before(self, end: dt.datetime) -> list[DigestPeriod]:
        """The kept transitions of every period starting before ``end``, oldest first, each in the order added."""
        query = (
            select(_DigestEntryRow)
            .where(_DigestEntryRow.period_start < end)
            .order_by(_DigestEntryRow.period_start, _DigestEntryRow.id)
        )
        rows: dict[dt.datetime, list[_DigestEntryRow]] = {}
        with self._lock, Session(self._ready()) as session:
            for row in session.scalars(query).all():
                rows.setdefault(row.period_start, []).append(row)
            sent = set(
                session.scalars(
                    select(_DigestSentPeriodRow.period_start).where(_DigestSentPeriodRow.period_start.in_(list(rows)))
                ).all()
            )
        return [
            DigestPeriod(
                start,
                tuple(row.id for row in kept),
                [Notification.from_json(row.body) for row in kept],
                follow_up=start in sent,
            )
            for start, kept in rows.items()
        ]

    def count(self) -> int:
        with self._lock, Session(self._ready()) as session:
            return session.scalar(select(func.count()).select_from(_DigestEntryRow)) or 0

    def forget(self, period_start: dt.datetime, row_ids: tuple[int, ...]) -> None:
        """Drops the transitions read into the period's queued digest, and only those: one recorded for the period
        since it was read stays for the next flush. Remembers the period as sent, in the same commit."""
        now = self._clock()
        with self._lock, Session(self._ready()) as session, session.begin():
            session.execute(delete(_DigestEntryRow).where(_DigestEntryRow.id.in_(row_ids)))
            session.execute(
                delete(_DigestSentPeriodRow).where(_DigestSentPeriodRow.period_start < now - _SENT_PERIODS_KEPT)
            )
            if session.get(_DigestSentPeriodRow, period_start) is None:
                session.add(_DigestSentPeriodRow(period_start=period_start, sent_at=now))


class P1Digest:
    """Collects P1 transitions by the (UTC) digest period they happen in; ``flush()`` sends each closed period's
    digest.

    Each closed period with at least one P1 transition gives one notification: logged at WARNING as a P1 alert line
    (``P1 Alert digest``, with the period and its alerts in ``details``) and handed to ``send`` (sync or async; the
    pipeline enqueues it for the P1 channels). The same alert transition twice in a period counts once. Non-P1
    alerts are ignored. Transitions are kept in ``store`` until their period's digest is handed over, so a new
    P1Digest on the same store resumes the open and unsent periods.
    A transition the store cannot take (it is down) is held in memory, the latest ``_HELD_LIMIT`` of them, and
    saved by the next ``add`` or ``flush``: none is lost while the process lives.

    A flush forgets only the transitions it read: one recorded for a period after its digest was read (a write that
    waited past the flush, a monitor sharing the store whose clock lags, a held one saved late) goes out in a
    follow-up digest of that period at the next flush (see ``digest_notification``). A digest handed over again
    after a crash holds the same transitions, so has the same id, and the outbox does not queue it twice (unless one
    more was recorded for the period in between: then the replay is a new digest, and its transitions are sent
    twice, never lost).
    ``add`` and ``flush`` run their store calls on the store's executor; ``pending`` blocks on the store. Whoever
    made the store closes it (``store.close()``, then ``store.executor.shutdown()``).
    """

    def __init__(
        self,
        send: Send,
        *,
        store: DigestStore | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        period: dt.timedelta = DEFAULT_DIGEST_PERIOD,
        logger: StructuredLogger | None = None,
    ) -> None:
        self._send = send
        self._clock = clock
        self.period = check_period(period)
        self._logger = logger or StructuredLogger("otel_monitor.alerts")
        self.store = store or DigestStore(clock=clock)
        self._held: deque[tuple[dt.datetime, Notification]] = deque()
        self._held_lock = threading.Lock()  # guards ``_held``, never held across a store call
        self._saving = threading.Lock()  # one saver of the held transitions at a time

    async def add(self, alert: Alert, transition: Transition | None = None) -> bool:
        """Records one transition in the current period; False when it is not a P1 alert. A store that fails
        leaves it held in memory (logged), for the next add or flush to save."""
        if alert.priority is not Priority.P1:
            return False
        self._hold(period_start(self._clock(), self.period), Notification.of(alert, transition))
        try:
            await self.store.executor.run(self._save_held)
        except Exception as exc:
            self._logger.error(
                "P1 digest store unavailable; transitions held in memory",
                held=len(self._held),
                error_type=type(exc).__name__,
            )
        return True

    def pending(self) -> int:
        """Transitions recorded (in the store or held in memory) and not yet sent."""
        return self.store.count() + len(self._held)

    async def flush(self) -> list[Notification]:
        """Sends the digest of every period that has closed by now (oldest first); returns what was sent."""
        await self.store.executor.run(self._save_held)
        periods = await self.store.executor.run(self.store.periods_before, period_start(self._clock(), self.period))
        sent: list[Notification] = []
        for kept in periods:
            digest = digest_notification(kept.start, kept.entries, follow_up=kept.follow_up, period=self.period)
            self._log(digest)
            result = self._send(digest)
            if inspect.isawaitable(result):
                await result
            # Forgotten only once handed over: a failing send leaves the period to the next flush.
            await self.store.executor.run(self.store.forget, kept.start, kept.row_ids)
            sent.append(digest)
        return sent

    def _hold(self, period_start: dt.datetime, notification: Notification) -> None:
        with self._held_lock:
            self._held.append((period_start, notification))
            dropped = self._held.popleft() if len(self._held) > _HELD_LIMIT else None
        if dropped is not None:
            self._logger.error(
                "P1 digest transition dropped: the store was down too long",
                error_code=dropped[1].alert.error_code,
                notification_id=dropped[1].id,
            )

    def _save_held(self) -> None:
        """Saves the held transitions to the store, oldest first; blocks, and raises when the store fails."""
        with self._saving:
            while True:
                with self._held_lock:
                    if not self._held:
                        return
                    entry = self._held[0]
                self.store.add(*entry)  # False (already there) is saved too
                with self._held_lock:
                    if self._held and self._held[0] is entry:
                        self._held.popleft()

    def seconds_to_next_period(self) -> float:
        now = self._clock().astimezone(_UTC)
        return max((period_start(now, self.period) + self.period - now).total_seconds(), 0.0)

    async def run(
        self, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, grace_seconds: float = 1.0
    ) -> None:
        """Flushes at once (periods a restart left unsent), then just after every period's end until cancelled; a
        failing send is logged and retried at the next period's end."""
        while True:
            try:
                await self.flush()
            except Exception as exc:
                self._logger.error("P1 digest hand-over failed", error_type=type(exc).__name__)
            await sleep(self.seconds_to_next_period() + grace_seconds)

    def _log(self, digest: Notification) -> None:
        alert = digest.alert
        assert alert.starts_at is not None and alert.ends_at is not None  # a digest's alert spans its period
        self._logger.warning(
            DIGEST_MESSAGE,
            alert_priority=Priority.P1.value,
            error_code=alert.error_code,
            notification_id=digest.id,
            details={
                "period_start": alert.starts_at.isoformat(),
                "period_end": alert.ends_at.isoformat(),
                "count": len(digest.digest),
                "alerts": [digest_entry(entry) for entry in digest.digest],
            },
        )

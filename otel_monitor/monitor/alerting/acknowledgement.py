"""Acknowledgements: "I'm on it" for one firing alert episode, kept until the alert resolves or its ``until`` passes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.model import FIRING, Alert, Priority, Transition
from otel_monitor.monitor.alerting.notification import Notification, repeat_id
from otel_monitor.monitor.alerting.state import SqlStore
from otel_monitor.monitor.store.schema import AlertAckRow as _AlertAckRow

__all__ = [
    "Acknowledgement",
    "AcknowledgementStore",
    "ACK_PATH",
    "ALERT_PAGE_PATH",
    "ACKNOWLEDGED_PRIORITIES",
    "ack_url",
    "episode_start",
    "paging_notification",
]

ACK_PATH = "/api/v1/alerts/{fingerprint}/ack"
# The alert's page: what a notification links to (a browser opens it; its form posts to ACK_PATH).
ALERT_PAGE_PATH = "/alerts/{fingerprint}"
# The priorities whose firing notifications link to their acknowledgement (they page someone).
ACKNOWLEDGED_PRIORITIES = frozenset({Priority.P0})


def ack_url(public_url: str, fingerprint: str) -> str:
    """Where an operator acknowledges the alert ``fingerprint`` on the monitor at ``public_url``: its page, whose
    form posts the acknowledgement (a link in a chat or an email opens with a GET)."""
    return public_url.rstrip("/") + ALERT_PAGE_PATH.format(fingerprint=quote(fingerprint, safe=""))


def paging_notification(
    alert: Alert, transition: Transition, *, public_url: str | None, repeat: int = 0
) -> Notification:
    """The alert's transition as notified: with ``public_url``, a firing P0 links to its acknowledgement; its
    ``repeat``-th repeat (> 0) has an id of its own. Resolved notifications have no link: a resolved alert takes no
    acknowledgement."""
    notification = Notification.of(alert, transition)
    if repeat:
        notification = replace(notification, id=repeat_id(alert, repeat), repeat=repeat)
    if public_url is not None and transition == FIRING and alert.priority in ACKNOWLEDGED_PRIORITIES:
        notification = replace(notification, ack_url=ack_url(public_url, alert.fingerprint))
    return notification


def episode_start(alert: Alert) -> dt.datetime:
    """What tells one episode of an alert from the next (its start; the alert store keys episodes on it too)."""
    if alert.starts_at is None:
        raise ValueError(f"alert {alert.fingerprint} has no start")
    return alert.starts_at


@dataclass(frozen=True)
class Acknowledgement:
    """One acknowledgement of one alert episode, detached from the database; ``ended_at`` once it went stale or a
    newer one replaced it."""

    fingerprint: str
    starts_at: dt.datetime
    by: str
    comment: str | None
    at: dt.datetime
    until: dt.datetime | None
    ended_at: dt.datetime | None = None

    def stale(self, now: dt.datetime) -> bool:
        """Whether its ``until`` has passed (with the alert still firing, it no longer holds)."""
        return self.until is not None and now >= self.until

    def to_json(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "by": self.by,
            "comment": self.comment,
            "at": iso_utc(self.at, microseconds=True),
            "until": iso_utc(self.until, microseconds=True),
        }


def _acknowledgement_of(row: _AlertAckRow) -> Acknowledgement:
    return Acknowledgement(
        row.fingerprint, row.starts_at, row.by, row.comment, row.acknowledged_at, row.until, row.ended_at
    )


class AcknowledgementStore(SqlStore):
    """The ``alert_acks`` table, in the outbox's database (same URL)."""

    def acknowledge(
        self, alert: Alert, *, by: str, comment: str | None = None, until: dt.datetime | None = None
    ) -> Acknowledgement:
        """Acknowledges the alert's episode now; a standing acknowledgement of it is replaced (ended now)."""
        now = self._clock()
        starts_at = episode_start(alert)
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            session.execute(
                update(_AlertAckRow).where(*self._standing(alert.fingerprint, starts_at)).values(ended_at=now)
            )
            row = _AlertAckRow(
                fingerprint=alert.fingerprint,
                starts_at=starts_at,
                by=by,
                comment=comment,
                acknowledged_at=now,
                until=until,
            )
            session.add(row)
            session.flush()
            return _acknowledgement_of(row)

    def end(self, acknowledgement: Acknowledgement, at: dt.datetime) -> None:
        """Ends a standing acknowledgement (gone stale)."""
        with self._lock, Session(self._ready()) as session, session.begin():
            session.execute(
                update(_AlertAckRow)
                .where(
                    *self._standing(acknowledgement.fingerprint, acknowledgement.starts_at),
                    _AlertAckRow.acknowledged_at == acknowledgement.at,
                )
                .values(ended_at=at)
            )

    def standing(self, alerts: Iterable[Alert]) -> dict[str, Acknowledgement]:
        """The standing acknowledgement of each given alert's episode that has one, by fingerprint."""
        episodes = {(alert.fingerprint, alert.starts_at) for alert in alerts if alert.starts_at is not None}
        if not episodes:
            return {}
        query = (
            select(_AlertAckRow)
            .where(
                _AlertAckRow.fingerprint.in_({fingerprint for fingerprint, _ in episodes}),
                _AlertAckRow.ended_at.is_(None),
            )
            .order_by(_AlertAckRow.acknowledged_at, _AlertAckRow.id)
        )
        with self._lock, Session(self._ready()) as session:
            rows = session.scalars(query).all()
        return {
            row.fingerprint: _acknowledgement_of(row) for row in rows if (row.fingerprint, row.starts_at) in episodes
        }

    @staticmethod
    def _standing(fingerprint: str, starts_at: dt.datetime) -> tuple:
        return (
            _AlertAckRow.fingerprint == fingerprint,
            _AlertAckRow.starts_at == starts_at,
            _AlertAckRow.ended_at.is_(None),
        )

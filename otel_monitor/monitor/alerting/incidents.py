"""Incidents: in production every P0 that fires opens one (open -> acknowledged -> resolved), with a timeline of
its steps, its alert's transitions, acknowledgements, notes, repeats and escalations."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.model import Alert, Priority
from otel_monitor.monitor.alerting.state import DEFAULT_HISTORY_LIMIT, SqlStore
from otel_monitor.monitor.store.schema import IncidentEventRow as _IncidentEventRow
from otel_monitor.monitor.store.schema import IncidentRow as _IncidentRow

__all__ = [
    "IncidentStatus",
    "IncidentEventKind",
    "Incident",
    "IncidentEvent",
    "IncidentStore",
    "UnknownIncident",
    "opens_incident",
    "INCIDENT_ENVIRONMENTS",
]

# Only production pages people; development and staging alerts notify without opening incidents.
INCIDENT_ENVIRONMENTS = frozenset({"production"})


def opens_incident(environment: str, alert: Alert) -> bool:
    """Whether the alert's firing opens an incident in this environment: P0s in production."""
    return environment in INCIDENT_ENVIRONMENTS and alert.priority is Priority.P0


class IncidentStatus(str, Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# The statuses of an incident not resolved yet: one per alert fingerprint at most.
_UNRESOLVED = (IncidentStatus.OPEN.value, IncidentStatus.ACKNOWLEDGED.value)


class IncidentEventKind(str, Enum):
    """What a timeline entry records."""

    OPENED = "opened"
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
    ACKNOWLEDGED = "acknowledged"
    ACKNOWLEDGEMENT_EXPIRED = "acknowledgement_expired"
    NOTE = "note"
    REPEATED = "repeated"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class UnknownIncident(LookupError):
    """No incident has this id."""


@dataclass(frozen=True)
class IncidentEvent:
    """One entry of an incident's timeline."""

    at: dt.datetime
    kind: IncidentEventKind
    author: str | None
    text: str

    def to_json(self) -> dict[str, object]:
        return {
            "at": iso_utc(self.at, microseconds=True),
            "kind": self.kind.value,
            "author": self.author,
            "text": self.text,
        }


def _seconds_between(start: dt.datetime, end: dt.datetime | None) -> float | None:
    return None if end is None else max((end - start).total_seconds(), 0.0)


@dataclass(frozen=True)
class Incident:
    """One incident, detached from the database; ``timeline`` only when read with it (``IncidentStore.get``)."""

    id: int
    fingerprint: str
    rule: str
    error_code: str
    service: str | None
    summary: str
    status: IncidentStatus
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    acknowledged_at: dt.datetime | None = None
    timeline: tuple[IncidentEvent, ...] = field(default=())

    @property
    def time_to_acknowledge(self) -> float | None:
        """Seconds from opening to its first acknowledgement (None: never acknowledged)."""
        return _seconds_between(self.opened_at, self.acknowledged_at)

    @property
    def time_to_resolve(self) -> float | None:
        """Seconds from opening to resolution (None: not resolved)."""
        return _seconds_between(self.opened_at, self.closed_at)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "error_code": self.error_code,
            "service": self.service,
            "summary": self.summary,
            "status": self.status.value,
            "opened_at": iso_utc(self.opened_at, microseconds=True),
            "acknowledged_at": iso_utc(self.acknowledged_at, microseconds=True),
            "closed_at": iso_utc(self.closed_at, microseconds=True),
            "time_to_acknowledge_seconds": self.time_to_acknowledge,
            "time_to_resolve_seconds": self.time_to_resolve,
        }


def _incident_of(row: _IncidentRow, timeline: tuple[IncidentEvent, ...] = ()) -> Incident:
    return Incident(
        row.id,
        row.fingerprint,
        row.rule,
        row.error_code,
        row.service,
        row.summary,
        IncidentStatus(row.status),
        row.opened_at,
        row.closed_at,
        row.acknowledged_at,
        timeline,
    )


def _event_of(row: _IncidentEventRow) -> IncidentEvent:
    return IncidentEvent(row.at, IncidentEventKind(row.kind), row.author, row.text)


class IncidentStore(SqlStore):
    """The ``incidents`` and ``incident_events`` tables, in the outbox's database (same URL)."""

    def open(self, alert: Alert) -> Incident | None:
        """Opens an incident for the firing alert; None when one is already open for it (a restart, a retry)."""
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            if session.scalar(self._unresolved_of(alert.fingerprint)) is not None:
                return None
            opened_at = alert.starts_at or self._clock()
            row = _IncidentRow(
                fingerprint=alert.fingerprint,
                rule=alert.rule,
                error_code=alert.error_code,
                service=alert.service,
                summary=alert.summary,
                status=IncidentStatus.OPEN.value,
                opened_at=opened_at,
            )
            session.add(row)
            session.flush()
            opened = f"{alert.priority.value} {alert.rule} fired"
            self._add(session, row.id, IncidentEventKind.OPENED, opened, at=opened_at)
            self._add(session, row.id, IncidentEventKind.ALERT_FIRING, alert.summary, at=opened_at)
            return _incident_of(row)

    def resolve_for(self, alert: Alert) -> Incident | None:
        """Resolves the alert's unresolved incident, at the alert's end; None when it has none."""
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            row = session.scalar(self._unresolved_of(alert.fingerprint))
            if row is None:
                return None
            row.status = IncidentStatus.RESOLVED.value
            row.closed_at = alert.ends_at or self._clock()
            self._add(session, row.id, IncidentEventKind.ALERT_RESOLVED, alert.summary, at=row.closed_at)
            self._add(session, row.id, IncidentEventKind.RESOLVED, "the alert resolved", at=row.closed_at)
            session.flush()
            return _incident_of(row)

    def acknowledge_for(self, alert: Alert, *, by: str, text: str) -> Incident | None:
        """Marks the alert's unresolved incident acknowledged (its first acknowledgement's time kept); None when it
        has none."""
        now = self._clock()
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            row = session.scalar(self._unresolved_of(alert.fingerprint))
            if row is None:
                return None
            row.status = IncidentStatus.ACKNOWLEDGED.value
            if row.acknowledged_at is None:
                row.acknowledged_at = now
            self._add(session, row.id, IncidentEventKind.ACKNOWLEDGED, text, author=by)
            session.flush()
            return _incident_of(row)

    def reopen_for(self, alert: Alert, *, text: str) -> Incident | None:
        """An acknowledgement of the alert went stale: its unresolved incident is open again; None when none."""
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            row = session.scalar(self._unresolved_of(alert.fingerprint))
            if row is None:
                return None
            row.status = IncidentStatus.OPEN.value
            self._add(session, row.id, IncidentEventKind.ACKNOWLEDGEMENT_EXPIRED, text)
            session.flush()
            return _incident_of(row)

    def record_for(self, alert: Alert, kind: IncidentEventKind, text: str) -> bool:
        """Adds an entry to the timeline of the alert's unresolved incident; False when it has none."""
        with self._lock, Session(self._ready()) as session, session.begin():
            row = session.scalar(self._unresolved_of(alert.fingerprint))
            if row is None:
                return False
            self._add(session, row.id, kind, text)
            return True

    def note(self, incident_id: int, *, author: str, text: str) -> IncidentEvent:
        """Adds an operator's note to an incident's timeline; raises UnknownIncident."""
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            if session.get(_IncidentRow, incident_id) is None:
                raise UnknownIncident(incident_id)
            return _event_of(self._add(session, incident_id, IncidentEventKind.NOTE, text, author=author))

    def get(self, incident_id: int) -> Incident:
        """One incident with its timeline, oldest entry first; raises UnknownIncident."""
        query = (
            select(_IncidentEventRow)
            .where(_IncidentEventRow.incident_id == incident_id)
            .order_by(_IncidentEventRow.at, _IncidentEventRow.id)
        )
        with self._lock, Session(self._ready()) as session:
            row = session.get(_IncidentRow, incident_id)
            if row is None:
                raise UnknownIncident(incident_id)
            return _incident_of(row, tuple(_event_of(event) for event in session.scalars(query).all()))

    def incidents(self, *, status: IncidentStatus | None = None, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Incident]:
        """The incidents, newest first."""
        query = select(_IncidentRow).order_by(_IncidentRow.opened_at.desc(), _IncidentRow.id.desc()).limit(limit)
        if status is not None:
            query = query.where(_IncidentRow.status == status.value)
        with self._lock, Session(self._ready()) as session:
            return [_incident_of(row) for row in session.scalars(query).all()]

    def unresolved_with_timelines(self, *, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Incident]:
        """The incidents not resolved yet (open and acknowledged), newest first, each with its timeline: two
        queries, whatever their number."""
        query = (
            select(_IncidentRow)
            .where(_IncidentRow.status.in_(_UNRESOLVED))
            .order_by(_IncidentRow.opened_at.desc(), _IncidentRow.id.desc())
            .limit(limit)
        )
        with self._lock, Session(self._ready()) as session:
            rows = session.scalars(query).all()
            events = session.scalars(
                select(_IncidentEventRow)
                .where(_IncidentEventRow.incident_id.in_([row.id for row in rows]))
                .order_by(_IncidentEventRow.at, _IncidentEventRow.id)
            ).all()
            timelines: dict[int, list[IncidentEvent]] = {row.id: [] for row in rows}
            for event in events:
                timelines[event.incident_id].append(_event_of(event))
            return [_incident_of(row, tuple(timelines[row.id])) for row in rows]

    def _add(
        self,
        session: Session,
        incident_id: int,
        kind: IncidentEventKind,
        text: str,
        *,
        author: str | None = None,
        at: dt.datetime | None = None,
    ) -> _IncidentEventRow:
        row = _IncidentEventRow(
            incident_id=incident_id, at=at or self._clock(), kind=kind.value, author=author, text=text
        )
        session.add(row)
        session.flush()
        return row

    @staticmethod
    def _unresolved_of(fingerprint: str) -> Select[_IncidentRow]:
        return select(_IncidentRow).where(_IncidentRow.fingerprint == fingerprint, _IncidentRow.status.in_(_UNRESOLVED))

"""Incidents: in production every P0 that fires opens one, closed when the alert resolves."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.model import Alert, Priority
from otel_monitor.monitor.alerting.state import DEFAULT_HISTORY_LIMIT, SqlStore
from otel_monitor.monitor.store.schema import IncidentRow as _IncidentRow

__all__ = ["IncidentStatus", "Incident", "IncidentStore", "opens_incident", "INCIDENT_ENVIRONMENTS"]

# Only production pages people; development and staging alerts notify without opening incidents.
INCIDENT_ENVIRONMENTS = frozenset({"production"})


def opens_incident(environment: str, alert: Alert) -> bool:
    """Whether the alert's firing opens an incident in this environment: P0s in production."""
    return environment in INCIDENT_ENVIRONMENTS and alert.priority is Priority.P0


class IncidentStatus(str, Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Incident:
    """One incident, detached from the database."""

    id: int
    fingerprint: str
    rule: str
    error_code: str
    service: str | None
    summary: str
    status: IncidentStatus
    opened_at: dt.datetime
    closed_at: dt.datetime | None

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
            "closed_at": iso_utc(self.closed_at, microseconds=True),
        }


def _incident_of(row: _IncidentRow) -> Incident:
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
    )


class IncidentStore(SqlStore):
    """The ``incidents`` table, in the outbox's database (same URL)."""

    def open(self, alert: Alert) -> Incident | None:
        """Opens an incident for the firing alert; None when one is already open for it (a restart, a retry)."""
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            if session.scalar(self._open_of(alert.fingerprint)) is not None:
                return None
            row = _IncidentRow(
                fingerprint=alert.fingerprint,
                rule=alert.rule,
                error_code=alert.error_code,
                service=alert.service,
                summary=alert.summary,
                status=IncidentStatus.OPEN.value,
                opened_at=alert.starts_at or self._clock(),
            )
            session.add(row)
            session.flush()
            return _incident_of(row)

    def close_for(self, alert: Alert) -> Incident | None:
        """Closes the alert's open incident, at the alert's end; None when it has none."""
        with self._lock, Session(self._ready(), expire_on_commit=False) as session, session.begin():
            row = session.scalar(self._open_of(alert.fingerprint))
            if row is None:
                return None
            row.status = IncidentStatus.CLOSED.value
            row.closed_at = alert.ends_at or self._clock()
            session.flush()
            return _incident_of(row)

    def incidents(self, *, status: IncidentStatus | None = None, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Incident]:
        """The incidents, newest first."""
        query = select(_IncidentRow).order_by(_IncidentRow.opened_at.desc(), _IncidentRow.id.desc()).limit(limit)
        if status is not None:
            query = query.where(_IncidentRow.status == status.value)
        with self._lock, Session(self._ready()) as session:
            return [_incident_of(row) for row in session.scalars(query).all()]

    @staticmethod
    def _open_of(fingerprint: str) -> Select[_IncidentRow]:
        return select(_IncidentRow).where(
            _IncidentRow.fingerprint == fingerprint, _IncidentRow.status == IncidentStatus.OPEN.value
        )

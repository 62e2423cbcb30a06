"""Alerts kept in the store: one row per alert episode, upserted on each change, read back at start and by the API."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from otel_monitor.monitor.alerting.delivery.outbox import SqlStore, open_store
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.monitor.store.schema import AlertRow as _AlertRow

__all__ = ["AlertStore", "AlertEpisode", "SqlStore", "open_store", "DEFAULT_HISTORY_LIMIT"]

_ACTIVE = (AlertState.PENDING.value, AlertState.FIRING.value)
DEFAULT_HISTORY_LIMIT = 100


def _fill(row: _AlertRow, alert: Alert, now: dt.datetime) -> None:
    row.rule, row.priority, row.state = alert.rule, alert.priority.value, alert.state.value
    row.service, row.labels = alert.service, json.dumps(alert.labels, sort_keys=True)
    row.error_code, row.summary = alert.error_code, alert.summary
    row.action_required, row.runbook, row.value = alert.action_required, alert.runbook, alert.value
    row.inhibited = json.dumps(list(alert.inhibited))
    row.ends_at, row.trace_id, row.jaeger_url = alert.ends_at, alert.trace_id, alert.jaeger_url
    row.logs_url = alert.logs_url
    row.updated_at = now
    if row.fired_at is None and alert.state is not AlertState.PENDING:
        row.fired_at = now
    if alert.value is not None:
        row.min_value = alert.value if row.min_value is None else min(row.min_value, alert.value)
        row.max_value = alert.value if row.max_value is None else max(row.max_value, alert.value)


def _alert_of(row: _AlertRow) -> Alert:
    return Alert(
        fingerprint=row.fingerprint,
        rule=row.rule,
        priority=Priority(row.priority),
        state=AlertState(row.state),
        error_code=row.error_code,
        summary=row.summary,
        action_required=row.action_required,
        runbook=row.runbook,
        labels=json.loads(row.labels),
        value=row.value,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        trace_id=row.trace_id,
        jaeger_url=row.jaeger_url,
        logs_url=row.logs_url,
        inhibited=tuple(json.loads(row.inhibited or "[]")),
    )


@dataclass(frozen=True)
class AlertEpisode:
    """One alert from its start to its end, as kept: when it fired and the range of values it was seen at."""

    alert: Alert
    fired_at: dt.datetime
    min_value: float | None
    max_value: float | None


class AlertStore(SqlStore):
    """The ``alerts`` table, in the outbox's database (same URL)."""

    # -- writing --------------------------------------------------------------------------------------------------
    def upsert(self, alert: Alert, *, firing_held: bool | None = None) -> None:
        """Writes the alert's episode (fingerprint and start) as it is now; ``firing_held`` (when given) records
        whether its firing notification is held by a silence."""
        now = self._clock()
        starts_at = alert.starts_at or now
        with self._lock, Session(self._ready()) as session, session.begin():
            row = session.scalar(
                select(_AlertRow).where(_AlertRow.fingerprint == alert.fingerprint, _AlertRow.starts_at == starts_at)
            )
            if row is None:
                row = _AlertRow(fingerprint=alert.fingerprint, starts_at=starts_at)
                session.add(row)
            _fill(row, alert, now)
            if firing_held is not None:
                row.firing_held = firing_held

    def discard(self, alert: Alert) -> None:
        """Drops a pending episode whose condition cleared before it fired: it never was an alert."""
        with self._lock, Session(self._ready()) as session, session.begin():
            session.execute(
                delete(_AlertRow).where(
                    _AlertRow.fingerprint == alert.fingerprint,
                    _AlertRow.state == AlertState.PENDING.value,
                    _AlertRow.starts_at == (alert.starts_at or self._clock()),
                )
            )

    # -- reading --------------------------------------------------------------------------------------------------
    def load_active(self) -> list[Alert]:
        """The pending and firing alerts, one per fingerprint (the latest episode), for ``Evaluator.restore``."""
        query = select(_AlertRow).where(_AlertRow.state.in_(_ACTIVE)).order_by(_AlertRow.starts_at)
        with self._lock, Session(self._ready()) as session:
            latest = {row.fingerprint: _alert_of(row) for row in session.scalars(query).all()}
        return list(latest.values())

    def load_held(self) -> list[str]:
        """The fingerprints of the firing alerts whose firing notification is held (latest episode of each)."""
        query = select(_AlertRow).where(_AlertRow.state.in_(_ACTIVE)).order_by(_AlertRow.starts_at)
        with self._lock, Session(self._ready()) as session:
            latest = {row.fingerprint: row.firing_held for row in session.scalars(query).all()}
        return [fp for fp, held in latest.items() if held]

    def latest(self, fingerprint: str) -> Alert | None:
        """The alert's latest episode as kept; None for a fingerprint never seen."""
        query = (
            select(_AlertRow)
            .where(_AlertRow.fingerprint == fingerprint)
            .order_by(_AlertRow.starts_at.desc(), _AlertRow.id.desc())
            .limit(1)
        )
        with self._lock, Session(self._ready()) as session:
            row = session.scalar(query)
            return None if row is None else _alert_of(row)

    def history(
        self,
        *,
        priority: Priority | None = None,
        service: str | None = None,
        state: AlertState | None = None,
        limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> list[Alert]:
        """Active and recently resolved alerts matching every filter given, most recently changed first."""
        query = select(_AlertRow).order_by(_AlertRow.updated_at.desc(), _AlertRow.id.desc()).limit(limit)
        if priority is not None:
            query = query.where(_AlertRow.priority == priority.value)
        if service is not None:
            query = query.where(_AlertRow.service == service)
        if state is not None:
            query = query.where(_AlertRow.state == state.value)
        with self._lock, Session(self._ready()) as session:
            return [_alert_of(row) for row in session.scalars(query).all()]

    def episodes_between(self, start: dt.datetime, end: dt.datetime) -> list[AlertEpisode]:
        """The episodes that fired and were firing at some time in ``[start, end)``, oldest first."""
        query = (
            select(_AlertRow)
            .where(
                _AlertRow.fired_at.is_not(None),
                _AlertRow.fired_at < end,
                or_(_AlertRow.ends_at.is_(None), _AlertRow.ends_at >= start),
            )
            .order_by(_AlertRow.fired_at, _AlertRow.id)
        )
        with self._lock, Session(self._ready()) as session:
            return [
                AlertEpisode(_alert_of(row), fired_at, row.min_value, row.max_value)
                for row in session.scalars(query).all()
                if (fired_at := row.fired_at) is not None  # as the query asks: narrows the type
            ]

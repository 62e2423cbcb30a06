"""Alerts kept in the store: one row per alert episode, upserted on each change, read back at start-up and by the API."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import Float, Index, Integer, String, Text, UniqueConstraint, delete, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.monitor.alerting.outbox import SqlStore, metadata, open_store
from otel_monitor.monitor.store.engine import UTCDateTime

__all__ = ["AlertStore", "AlertEpisode", "SqlStore", "open_store", "DEFAULT_HISTORY_LIMIT"]

_UTC = dt.timezone.utc
_ACTIVE = (AlertState.PENDING.value, AlertState.FIRING.value)
DEFAULT_HISTORY_LIMIT = 100


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


class _Base(DeclarativeBase):
    metadata = metadata


class _AlertRow(_Base):
    __tablename__ = "alerts"
    # An episode is one alert from its pending start: the same fingerprint firing again later is a new row.
    __table_args__ = (UniqueConstraint("fingerprint", "starts_at"), Index(None, "state", "updated_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(255), nullable=False)
    rule: Mapped[str] = mapped_column(String(255), nullable=False)
    priority: Mapped[str] = mapped_column(String(4), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    service: Mapped[str | None] = mapped_column(String(255), nullable=True)
    labels: Mapped[str] = mapped_column(Text, nullable=False)
    error_code: Mapped[str] = mapped_column(String(128), nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    action_required: Mapped[str] = mapped_column(Text, nullable=False)
    runbook: Mapped[str] = mapped_column(Text, nullable=False)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    inhibited: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    jaeger_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    # When the episode first fired (None while pending), and the lowest and highest value it was evaluated at:
    # the daily summary reports each alert of the day with its worst value.
    fired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    min_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Float, nullable=True)

    def fill(self, alert: Alert, now: dt.datetime) -> None:
        self.rule, self.priority, self.state = alert.rule, alert.priority.value, alert.state.value
        self.service, self.labels = alert.service, json.dumps(alert.labels, sort_keys=True)
        self.error_code, self.summary = alert.error_code, alert.summary
        self.action_required, self.runbook, self.value = alert.action_required, alert.runbook, alert.value
        self.inhibited = json.dumps(list(alert.inhibited))
        self.ends_at, self.trace_id, self.jaeger_url = alert.ends_at, alert.trace_id, alert.jaeger_url
        self.updated_at = now
        if self.fired_at is None and alert.state is not AlertState.PENDING:
            self.fired_at = now
        if alert.value is not None:
            self.min_value = alert.value if self.min_value is None else min(self.min_value, alert.value)
            self.max_value = alert.value if self.max_value is None else max(self.max_value, alert.value)

    def alert(self) -> Alert:
        return Alert(fingerprint=self.fingerprint, rule=self.rule, priority=Priority(self.priority),
                     state=AlertState(self.state), error_code=self.error_code, summary=self.summary,
                     action_required=self.action_required, runbook=self.runbook, labels=json.loads(self.labels),
                     value=self.value, starts_at=self.starts_at, ends_at=self.ends_at, trace_id=self.trace_id,
                     jaeger_url=self.jaeger_url, inhibited=tuple(json.loads(self.inhibited or "[]")))


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
    def upsert(self, alert: Alert) -> None:
        """Writes the alert's episode (fingerprint and start) as it is now."""
        now = self._clock()
        starts_at = alert.starts_at or now
        with self._lock, Session(self._ready()) as session, session.begin():
            row = session.scalar(select(_AlertRow).where(_AlertRow.fingerprint == alert.fingerprint,
                                                         _AlertRow.starts_at == starts_at))
            if row is None:
                row = _AlertRow(fingerprint=alert.fingerprint, starts_at=starts_at)
                session.add(row)
            row.fill(alert, now)

    def discard(self, alert: Alert) -> None:
        """Drops a pending episode whose condition cleared before it fired: it never was an alert."""
        with self._lock, Session(self._ready()) as session, session.begin():
            session.execute(delete(_AlertRow).where(
                _AlertRow.fingerprint == alert.fingerprint, _AlertRow.state == AlertState.PENDING.value,
                _AlertRow.starts_at == (alert.starts_at or self._clock())))

    # -- reading --------------------------------------------------------------------------------------------------
    def load_active(self) -> list[Alert]:
        """The pending and firing alerts, one per fingerprint (the latest episode), for ``Evaluator.restore``."""
        query = select(_AlertRow).where(_AlertRow.state.in_(_ACTIVE)).order_by(_AlertRow.starts_at)
        with self._lock, Session(self._ready()) as session:
            latest = {row.fingerprint: row.alert() for row in session.scalars(query).all()}
        return list(latest.values())

    def history(self, *, priority: Priority | None = None, service: str | None = None,
                state: AlertState | None = None, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Alert]:
        """Active and recently resolved alerts matching every filter given, most recently changed first."""
        query = select(_AlertRow).order_by(_AlertRow.updated_at.desc(), _AlertRow.id.desc()).limit(limit)
        if priority is not None:
            query = query.where(_AlertRow.priority == priority.value)
        if service is not None:
            query = query.where(_AlertRow.service == service)
        if state is not None:
            query = query.where(_AlertRow.state == state.value)
        with self._lock, Session(self._ready()) as session:
            return [row.alert() for row in session.scalars(query).all()]

    def episodes_between(self, start: dt.datetime, end: dt.datetime) -> list[AlertEpisode]:
        """The episodes that fired and were firing at some time in ``[start, end)``, oldest first."""
        query = (select(_AlertRow).where(_AlertRow.fired_at.is_not(None), _AlertRow.fired_at < end,
                                         or_(_AlertRow.ends_at.is_(None), _AlertRow.ends_at >= start))
                 .order_by(_AlertRow.fired_at, _AlertRow.id))
        with self._lock, Session(self._ready()) as session:
            return [AlertEpisode(row.alert(), row.fired_at, row.min_value, row.max_value)
                    for row in session.scalars(query).all()]

"""Every table of the monitor's stores, on one declarative base and one metadata (the quota history and the alerting
tables), so that one Alembic history keeps them all."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, Float, Index, Integer, MetaData, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from otel_monitor.monitor.store.engine import UTCDateTime

__all__ = [
    "metadata",
    "Base",
    "QuotaUsage",
    "AlertRow",
    "IncidentRow",
    "IncidentEventRow",
    "AlertAckRow",
    "AlertEscalationRow",
    "OutboxRow",
    "DeliveryAttemptRow",
    "DigestEntryRow",
    "DigestSentPeriodRow",
    "UptimeDayRow",
    "SilenceRow",
]

# Constraint and index names follow from the table and columns, the same on SQLite and PostgreSQL, so that a
# migration can name what it creates and compare a database with these models.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = metadata


class QuotaUsage(Base):
    """One quota check: what was used of the total at ``timestamp`` (UTC); ``percentage`` is in percent (85.0)."""

    __tablename__ = "quota_usage"
    __table_args__ = (Index(None, "service", "timestamp"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(32), nullable=False)
    used: Mapped[float] = mapped_column(Float, nullable=False)
    total: Mapped[float] = mapped_column(Float, nullable=False)
    percentage: Mapped[float] = mapped_column(Float, nullable=False)
    timestamp: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class AlertRow(Base):
    """One alert episode, upserted on each change; ``labels`` and ``inhibited`` are JSON."""

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
    logs_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    # When the episode first fired (None while pending), and the lowest and highest value it was evaluated at:
    # the daily summary reports each alert of the day with its worst value.
    fired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    min_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The episode's firing notification was held by a silence or maintenance window, not sent yet: it goes out
    # when nothing holds the alert any more (kept here so that a restart does not forget it).
    firing_held: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())


class IncidentRow(Base):
    """One incident: opened when a P0 fires in production (``open``), ``acknowledged`` when someone acks its alert,
    ``resolved`` when the alert resolves (``closed_at``)."""

    __tablename__ = "incidents"
    __table_args__ = (Index(None, "fingerprint", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(255), nullable=False)
    rule: Mapped[str] = mapped_column(String(255), nullable=False)
    error_code: Mapped[str] = mapped_column(String(128), nullable=False)
    service: Mapped[str | None] = mapped_column(String(255), nullable=True)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The first acknowledgement (time to acknowledge: from opened_at).
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IncidentEventRow(Base):
    """One entry of an incident's timeline: ``kind`` (opened, alert_firing, acknowledged, note, ...), who and what."""

    __tablename__ = "incident_events"
    __table_args__ = (Index(None, "incident_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    author: Mapped[str | None] = mapped_column(String(255), nullable=True)
    text: Mapped[str] = mapped_column(Text, nullable=False)


class AlertAckRow(Base):
    """One acknowledgement of one alert episode (fingerprint and start); ``ended_at`` once it went stale (past
    ``until`` with the alert still firing) or was replaced by a newer acknowledgement."""

    __tablename__ = "alert_acks"
    __table_args__ = (Index(None, "fingerprint", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(255), nullable=False)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    by: Mapped[str] = mapped_column(String(255), nullable=False)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    acknowledged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AlertEscalationRow(Base):
    """What repeat and escalation sent for one alert episode: repeats so far, when it was last notified, from when
    its escalation steps count, how many steps were reached and the channels they reached (JSON)."""

    __tablename__ = "alert_escalations"
    __table_args__ = (UniqueConstraint("fingerprint", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(255), nullable=False)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    repeats: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_notified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    steps_since: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    steps_reached: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    channels_reached: Mapped[str] = mapped_column(Text, nullable=False, default="[]")


class OutboxRow(Base):
    """One notification to deliver on one channel, with its delivery status; ``next_attempt_at`` is also the lease
    of a claimed row."""

    __tablename__ = "alert_outbox"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        Index(None, "channel", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(64), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(255), nullable=False)
    priority: Mapped[str] = mapped_column(String(4), nullable=False)
    transition: Mapped[str] = mapped_column(String(16), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class DeliveryAttemptRow(Base):
    """One finished attempt at an outbox row (the delivery ledger): when its outcome came, ``result`` (ok, retry or
    failed), the receiver's HTTP status when it answered, and the scrubbed error text."""

    __tablename__ = "alert_delivery_attempts"
    __table_args__ = (UniqueConstraint("outbox_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(Integer, nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    result: Mapped[str] = mapped_column(String(8), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class DigestEntryRow(Base):
    """One P1 transition kept for its digest period's digest."""

    __tablename__ = "alert_digest_entries"
    __table_args__ = (UniqueConstraint("period_start", "notification_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    notification_id: Mapped[str] = mapped_column(String(64), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class DigestSentPeriodRow(Base):
    """A digest period whose digest was queued: later transitions of it go out as a follow-up (the table keeps its
    first name, from when every period was an hour)."""

    __tablename__ = "alert_digest_sent_hours"

    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class UptimeDayRow(Base):
    """One component's health checks of one UTC day, for the status page's uptime bars: how many found it up."""

    __tablename__ = "status_uptime_days"

    component: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    checks_up: Mapped[int] = mapped_column(Integer, nullable=False)
    checks_total: Mapped[int] = mapped_column(Integer, nullable=False)


class SilenceRow(Base):
    """One silence: ``matchers`` is JSON (name, value, operator); expiring it sets ``ends_at`` to the moment."""

    __tablename__ = "silences"
    __table_args__ = (Index(None, "ends_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    matchers: Mapped[str] = mapped_column(Text, nullable=False)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    comment: Mapped[str] = mapped_column(Text, nullable=False)
    author: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)

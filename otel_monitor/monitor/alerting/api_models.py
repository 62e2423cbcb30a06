"""The bodies the alerting routes answer, as pydantic models: what the OpenAPI document shows and clients rely on."""

from __future__ import annotations

from pydantic import BaseModel, Field

from otel_monitor.monitor.alerting.incidents import IncidentEventKind, IncidentStatus
from otel_monitor.monitor.alerting.model import AlertState, Priority

__all__ = [
    "AckOut",
    "AcknowledgedOut",
    "IncidentEventOut",
    "IncidentWithTimeline",
    "AlertList",
    "AlertOut",
    "AttemptOut",
    "DeliveryOut",
    "DrillChannelOut",
    "DrillReport",
    "IncidentList",
    "IncidentOut",
    "NotificationList",
]


class AcknowledgedOut(BaseModel):
    """The standing acknowledgement of a firing alert (times ISO 8601 UTC)."""

    by: str
    at: str
    until: str | None


class AckOut(AcknowledgedOut):
    """A standing acknowledgement as ``POST /api/v1/alerts/{fingerprint}/ack`` answers it."""

    fingerprint: str
    comment: str | None


class AlertOut(BaseModel):
    """One alert; times are ISO 8601 UTC (None while unknown or still active)."""

    fingerprint: str
    rule: str
    priority: Priority
    state: AlertState
    error_code: str
    service: str | None
    summary: str
    action_required: str
    runbook: str
    starts_at: str | None
    ends_at: str | None
    trace_id: str | None
    jaeger_url: str | None
    logs_url: str | None = Field(None, description="the failing call's log lines in VictoriaLogs")
    acknowledged: AcknowledgedOut | None = Field(None, description="who acknowledged it firing, when, until when")
    silenced_by: list[str] = Field(
        default_factory=list, description="the silences and maintenance windows holding its notifications now"
    )


class AlertList(BaseModel):
    """Active alerts (most urgent and oldest first), then resolved ones (most recently ended first)."""

    alerts: list[AlertOut]


class IncidentOut(BaseModel):
    """One incident of a P0 alert: open, acknowledged, then resolved when the alert resolves."""

    id: int
    fingerprint: str
    rule: str
    error_code: str
    service: str | None
    summary: str
    status: IncidentStatus
    opened_at: str
    acknowledged_at: str | None
    closed_at: str | None = Field(description="when it resolved")
    time_to_acknowledge_seconds: float | None
    time_to_resolve_seconds: float | None


class IncidentEventOut(BaseModel):
    """One entry of an incident's timeline."""

    at: str
    kind: IncidentEventKind
    author: str | None
    text: str


class IncidentWithTimeline(IncidentOut):
    """An incident with its timeline, oldest entry first."""

    timeline: list[IncidentEventOut]


class IncidentList(BaseModel):
    """Incidents, newest first."""

    incidents: list[IncidentOut]


class AttemptOut(BaseModel):
    """One delivery attempt: its result, the receiver's HTTP status if any, the error text (scrubbed)."""

    attempt: int
    at: str
    result: str
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    """One notification on one channel, with its attempts and final state."""

    id: int
    channel: str
    notification_id: str
    fingerprint: str
    rule: str
    priority: Priority
    transition: str
    status: str
    created_at: str
    done_at: str | None
    next_attempt_at: str | None
    last_error: str | None
    attempts: list[AttemptOut]


class NotificationList(BaseModel):
    """The delivery ledger, newest first."""

    notifications: list[DeliveryOut]


class DrillChannelOut(BaseModel):
    """What the drill's notification came to on one channel: delivered, retrying or failed, and why."""

    channel: str
    outcome: str
    reason: str
    notification_id: str
    attempts: int


class DrillReport(BaseModel):
    """A fire drill: ``ok`` when every channel delivered."""

    ok: bool
    channels: list[DrillChannelOut]

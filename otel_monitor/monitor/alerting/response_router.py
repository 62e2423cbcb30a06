"""What operators do about alerts over the API: ``POST /api/v1/alerts/{fingerprint}/ack``,
``GET /api/v1/incidents/{id}`` (with its timeline) and ``POST /api/v1/incidents/{id}/notes``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from otel_monitor.monitor.alerting.acknowledgement import ACK_PATH
from otel_monitor.monitor.alerting.api_models import AckOut, IncidentEventOut, IncidentWithTimeline
from otel_monitor.monitor.alerting.incidents import UnknownIncident
from otel_monitor.monitor.alerting.service import NotFiring
from otel_monitor.monitor.api_errors import error_responses, invalid_body_field

if TYPE_CHECKING:
    from otel_monitor.monitor.alerting.service import AlertingService

__all__ = [
    "AckRequest",
    "NoteRequest",
    "INCIDENT_PATH",
    "INCIDENT_NOTES_PATH",
    "build_response_router",
]

INCIDENT_PATH = "/api/v1/incidents/{incident_id}"
INCIDENT_NOTES_PATH = INCIDENT_PATH + "/notes"
_NAME = Field(min_length=1, max_length=255)
_TEXT = Field(min_length=1, max_length=4000)


class AckRequest(BaseModel):
    """Who acknowledges, why, and until when at most (a time with its zone; past it, the alert notifies again)."""

    model_config = ConfigDict(extra="forbid")
    by: Annotated[str, _NAME]
    comment: Annotated[str | None, Field(max_length=4000)] = None
    until: AwareDatetime | None = None


class NoteRequest(BaseModel):
    """A note on an incident's timeline."""

    model_config = ConfigDict(extra="forbid")
    author: Annotated[str, _NAME]
    text: Annotated[str, _TEXT]


def _alerting(request: Request) -> AlertingService | None:
    return getattr(request.app.state, "alerting", None)


def build_response_router() -> APIRouter:
    """The routes over the app's alerting service (``app.state.alerting``); with alerting off there is no firing
    alert and no incident: 404."""
    router = APIRouter(tags=["alerts"])

    @router.post(ACK_PATH, responses=error_responses(404))
    async def acknowledge_alert(
        request: Request,
        fingerprint: Annotated[str, Path(max_length=255, description="the firing alert's fingerprint")],
        ack: Annotated[AckRequest, Body()],
    ) -> AckOut:
        alerting = _alerting(request)
        if alerting is None:
            raise HTTPException(404, detail=f"no firing alert has fingerprint {fingerprint!r}")
        try:
            acknowledgement = await alerting.acknowledge(fingerprint, by=ack.by, comment=ack.comment, until=ack.until)
        except NotFiring:
            raise HTTPException(404, detail=f"no firing alert has fingerprint {fingerprint!r}") from None
        except ValueError as exc:  # an ``until`` already past
            raise invalid_body_field("until", str(exc), ack.until) from None
        return AckOut.model_validate(acknowledgement.to_json())

    @router.get(INCIDENT_PATH, responses=error_responses(404))
    async def get_incident(request: Request, incident_id: Annotated[int, Path(ge=1)]) -> IncidentWithTimeline:
        alerting = _alerting(request)
        try:
            if alerting is None:
                raise UnknownIncident(incident_id)
            incident = await alerting.incident(incident_id)
        except UnknownIncident:
            raise HTTPException(404, detail=f"no incident {incident_id}") from None
        return IncidentWithTimeline.model_validate(
            {**incident.to_json(), "timeline": [event.to_json() for event in incident.timeline]}
        )

    @router.post(INCIDENT_NOTES_PATH, status_code=201, responses=error_responses(404))
    async def add_incident_note(
        request: Request, incident_id: Annotated[int, Path(ge=1)], note: Annotated[NoteRequest, Body()]
    ) -> IncidentEventOut:
        alerting = _alerting(request)
        try:
            if alerting is None:
                raise UnknownIncident(incident_id)
            event = await alerting.note(incident_id, author=note.author, text=note.text)
        except UnknownIncident:
            raise HTTPException(404, detail=f"no incident {incident_id}") from None
        return IncidentEventOut.model_validate(event.to_json())

    return router

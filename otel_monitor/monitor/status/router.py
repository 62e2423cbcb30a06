"""``GET /`` (the status page, HTML rendered by the server), ``GET /api/v1/status`` (the same as JSON) and
``GET /alerts/{fingerprint}`` (one alert's page, where notifications link: its details and an acknowledgement form)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from otel_monitor.monitor.alerting.acknowledgement import ACK_PATH, ALERT_PAGE_PATH
from otel_monitor.monitor.alerting.model import AlertState
from otel_monitor.monitor.status.model import StatusSummary
from otel_monitor.monitor.status.render import render_alert_page, render_no_alert_page, render_status_page
from otel_monitor.monitor.status.service import StatusService

__all__ = ["STATUS_PAGE_PATH", "STATUS_PATH", "STATUS_WS_PATH", "ALERT_PAGE_PATH", "build_status_router"]

STATUS_PAGE_PATH = "/"
STATUS_PATH = "/api/v1/status"
# The alerts WebSocket, asking for the status messages besides the notifications.
STATUS_WS_PATH = "/api/v1/alerts/ws?include=status"
_NO_STORE = {"Cache-Control": "no-store"}


def build_status_router(status: StatusService) -> APIRouter:
    router = APIRouter(tags=["status"])

    @router.get(STATUS_PATH, summary="Status of every component, provider, alert, incident and silence")
    async def get_status() -> StatusSummary:
        return await status.summary()

    @router.get(
        STATUS_PAGE_PATH,
        summary="The status page (HTML; live over the alerts WebSocket with JavaScript, complete without)",
        response_class=HTMLResponse,
    )
    async def status_page() -> HTMLResponse:
        page = render_status_page(await status.summary(), websocket_path=STATUS_WS_PATH)
        return HTMLResponse(page, headers=_NO_STORE)

    @router.get(
        ALERT_PAGE_PATH,
        summary="One alert's page (HTML): its details, its acknowledgement, a form to acknowledge it while firing",
        response_class=HTMLResponse,
        responses={
            404: {"description": "No alert has this fingerprint (a page saying so)", "content": {"text/html": {}}}
        },
    )
    async def alert_page(
        request: Request,
        fingerprint: Annotated[str, Path(max_length=255, description="the alert's fingerprint")],
    ) -> HTMLResponse:
        alerting = getattr(request.app.state, "alerting", None)
        alert = None if alerting is None else await alerting.alert(fingerprint)
        if alerting is None or alert is None:
            return HTMLResponse(render_no_alert_page(fingerprint), status_code=404, headers=_NO_STORE)
        firing = alert.state is AlertState.FIRING
        acknowledgement = (await alerting.standing_acks([alert])).get(fingerprint) if firing else None
        ack_path = ACK_PATH.format(fingerprint=quote(fingerprint, safe=""))
        page = render_alert_page(
            alert,
            acknowledgement=acknowledgement,
            silenced_by=alerting.silences.holding(alert) if firing else [],
            ack_path=ack_path,
            ack_url=str(request.base_url).rstrip("/") + ack_path,
            token_needed=bool(getattr(request.app.state, "tokens_required", False)),
        )
        return HTMLResponse(page, headers=_NO_STORE)

    return router

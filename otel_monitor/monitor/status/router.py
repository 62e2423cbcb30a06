"""``GET /`` (the status page, HTML rendered by the server) and ``GET /api/v1/status`` (the same as JSON)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from otel_monitor.monitor.status.model import StatusSummary
from otel_monitor.monitor.status.render import render_status_page
from otel_monitor.monitor.status.service import StatusService

__all__ = ["STATUS_PAGE_PATH", "STATUS_PATH", "STATUS_WS_PATH", "build_status_router"]

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

    return router

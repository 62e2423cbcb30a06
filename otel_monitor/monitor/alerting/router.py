"""``GET /api/v1/alerts`` (active and recent alerts, filtered by priority, service and state; a firing one with its
standing acknowledgement), ``GET /api/v1/incidents`` (filtered by status), and ``/api/v1/alerts/ws`` (WebSocket push
of notifications)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.acknowledgement import Acknowledgement
from otel_monitor.monitor.alerting.api_models import AlertList, IncidentList
from otel_monitor.monitor.alerting.incidents import Incident, IncidentStatus
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.monitor.alerting.notifiers.websocket import WebSocketHub, serve_subscriber
from otel_monitor.monitor.alerting.state import DEFAULT_HISTORY_LIMIT
from otel_monitor.monitor.auth.middleware import STATUS_ONLY

__all__ = ["ALERTS_PATH", "ALERTS_WS_PATH", "INCIDENTS_PATH", "build_alerts_router", "alert_json", "select_alerts"]

ALERTS_PATH = "/api/v1/alerts"
INCIDENTS_PATH = "/api/v1/incidents"
ALERTS_WS_PATH = "/api/v1/alerts/ws"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_LIMIT = 1000

AlertHistory = Callable[..., Awaitable[list[Alert]]]
StandingAcks = Callable[[Sequence[Alert]], Awaitable[Mapping[str, Acknowledgement]]]
IncidentHistory = Callable[..., Awaitable[list[Incident]]]


def alert_json(alert: Alert, acknowledgement: Acknowledgement | None = None) -> dict[str, object]:
    """One alert as the API shows it, ``acknowledged`` (by, at, until) when someone acknowledged it firing."""
    ack = None
    if acknowledgement is not None and alert.state is AlertState.FIRING:
        ack = {key: acknowledgement.to_json()[key] for key in ("by", "at", "until")}
    return {
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "priority": alert.priority.value,
        "state": alert.state.value,
        "error_code": alert.error_code,
        "service": alert.service,
        "summary": alert.summary,
        "action_required": alert.action_required,
        "runbook": alert.runbook,
        "starts_at": iso_utc(alert.starts_at, microseconds=True),
        "ends_at": iso_utc(alert.ends_at, microseconds=True),
        "trace_id": alert.trace_id,
        "jaeger_url": alert.jaeger_url,
        "logs_url": alert.logs_url,
        "acknowledged": ack,
    }


def select_alerts(
    alerts: Iterable[Alert],
    *,
    priority: Priority | None = None,
    service: str | None = None,
    state: AlertState | None = None,
) -> list[Alert]:
    """The alerts matching every filter given: active ones first, most urgent and oldest first; then resolved
    ones, most recently ended first."""
    chosen = [
        a
        for a in alerts
        if (priority is None or a.priority is priority)
        and (service is None or a.service == service)
        and (state is None or a.state is state)
    ]
    active = sorted(
        (a for a in chosen if a.state is not AlertState.RESOLVED),
        key=lambda a: (a.priority.value, a.starts_at or _EPOCH),
    )
    resolved = sorted(
        (a for a in chosen if a.state is AlertState.RESOLVED),
        key=lambda a: a.ends_at or a.starts_at or _EPOCH,
        reverse=True,
    )
    return active + resolved


async def _no_alerts(**_filters: object) -> list[Any]:  # empty: a list of alerts and of incidents alike
    return []


async def _no_acks(_alerts: Sequence[Alert]) -> Mapping[str, Acknowledgement]:
    return {}


def build_alerts_router(
    alert_history: AlertHistory = _no_alerts,
    incident_history: IncidentHistory = _no_alerts,
    websocket_hub: WebSocketHub | None = None,
    status_hub: WebSocketHub | None = None,
    standing_acks: StandingAcks = _no_acks,
) -> APIRouter:
    """The alerts and incidents routers over the alerting service's stores (nothing while alerting is off); bad
    filter values get FastAPI's 422 JSON. The WebSocket serves ``websocket_hub``, else the hub of the app's
    alerting service (``app.state.alerting``), else an idle one (alerting off: clients connect, nothing comes). A client
    connecting with ``?include=status`` gets the status page's messages of ``status_hub`` too (``"type": "status"``);
    the others get the notifications alone, as ever."""
    router = APIRouter(tags=["alerts"])
    idle_hub = WebSocketHub()

    @router.websocket(ALERTS_WS_PATH)
    async def alerts_ws(websocket: WebSocket) -> None:
        alerting = getattr(websocket.app.state, "alerting", None)
        hub = websocket_hub or getattr(alerting, "websocket_hub", None) or idle_hub
        wants_status = status_hub is not None and websocket.query_params.get("include") == "status"
        if websocket.scope.get(STATUS_ONLY) and status_hub is not None:
            await serve_subscriber(status_hub, websocket)  # a public status page's script, without a token
            return
        await serve_subscriber(hub, websocket, also=[status_hub] if wants_status and status_hub else [])

    @router.get(ALERTS_PATH, response_model=AlertList)
    async def get_alerts(
        request: Request,
        priority: Annotated[Priority | None, Query(description="only this priority")] = None,
        service: Annotated[str | None, Query(description="only alerts of this service label")] = None,
        state: Annotated[AlertState | None, Query(description="only alerts in this state")] = None,
        limit: Annotated[int, Query(ge=1, le=_MAX_LIMIT, description="at most this many")] = DEFAULT_HISTORY_LIMIT,
    ) -> dict[str, object]:
        alerts = select_alerts(await alert_history(priority=priority, service=service, state=state, limit=limit))
        acks = await standing_acks([alert for alert in alerts if alert.state is AlertState.FIRING])
        silences = getattr(getattr(request.app.state, "alerting", None), "silences", None)

        def silenced_by(alert: Alert) -> list[str]:  # what holds its notifications now (a resolved one: nothing)
            return [] if silences is None or alert.state is AlertState.RESOLVED else silences.holding(alert)

        return {
            "alerts": [
                {**alert_json(alert, acks.get(alert.fingerprint)), "silenced_by": silenced_by(alert)}
                for alert in alerts
            ]
        }

    @router.get(INCIDENTS_PATH, response_model=IncidentList)
    async def get_incidents(
        status: Annotated[IncidentStatus | None, Query(description="only incidents in this status")] = None,
        limit: Annotated[int, Query(ge=1, le=_MAX_LIMIT, description="at most this many")] = DEFAULT_HISTORY_LIMIT,
    ) -> dict[str, object]:
        incidents = await incident_history(status=status, limit=limit)
        return {"incidents": [incident.to_json() for incident in incidents]}

    return router

"""The health endpoints: ``GET /api/v1/system/health`` (readiness of the dependencies) and ``GET /livez``."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.types import Receive, Scope, Send

from otel_monitor.instrument.probe_paths import HEALTH_PATH, LIVENESS_PATH
from otel_monitor.monitor.health.service import HealthService
from otel_monitor.monitor.health.status import HEALTH_JSON_MEDIA_TYPE, http_status_code, render_health_json

__all__ = [
    "HEALTH_PATH",
    "LIVENESS_PATH",
    "CheckResult",
    "HealthReport",
    "HealthResponder",
    "Liveness",
    "ReplicaStatus",
    "build_health_router",
    "health_response",
    "wants_health_json",
]

# Probes must see the current state, never a proxy's copy.
_NO_STORE = {"Cache-Control": "no-store"}


class CheckResult(BaseModel):
    """One dependency check: its status, plus its own measurements (latency_ms, active_workers, ...) and error."""

    model_config = ConfigDict(extra="allow")
    status: Literal["healthy", "degraded", "unhealthy"]


class ReplicaStatus(BaseModel):
    """This monitor replica: its id, whether it leads (evaluates the rules), whether replicas are on (``ha``)."""

    id: str
    leader: bool
    ha: bool


class HealthReport(BaseModel):
    """The health report: the same body at 200 (healthy or degraded) and 503 (unhealthy)."""

    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    checks: dict[str, CheckResult]
    replica: ReplicaStatus | None = None


class _IetfHealth(BaseModel):
    """The report as application/health+json (draft-inadarei-api-health-check): "name:measurement" entries."""

    status: Literal["pass", "warn", "fail"]
    checks: dict[str, list[dict[str, Any]]]


class Liveness(BaseModel):
    """The process serves."""

    status: Literal["ok"]


def _report_responses() -> dict[int | str, dict[str, Any]]:
    """200 and 503 of the health endpoint: the report as JSON, or as health+json when the Accept header asks."""
    ietf = {HEALTH_JSON_MEDIA_TYPE: {"schema": _IetfHealth.model_json_schema()}}
    return {
        200: {"model": HealthReport, "description": "healthy or degraded", "content": ietf},
        503: {"model": HealthReport, "description": "unhealthy: a dependency fails", "content": ietf},
    }


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


@lru_cache(maxsize=256)  # probes send the same few Accept headers
def wants_health_json(accept: str | None) -> bool:
    """Whether the Accept header prefers ``application/health+json`` (q > 0, not below ``application/json``)."""
    if not accept:
        return False
    qualities: dict[str, float] = {}
    for item in accept.split(","):
        media_type, *params = item.split(";")
        qualities[media_type.strip().lower()] = _quality(params)
    health = qualities.get(HEALTH_JSON_MEDIA_TYPE, 0.0)
    return health > 0 and health >= qualities.get("application/json", 0.0)


def health_response(report: dict[str, Any], accept: str | None = None) -> JSONResponse:
    """The report as JSON (or health+json when asked for): 200 healthy or degraded, 503 unhealthy."""
    status_code = http_status_code(report["status"])
    if wants_health_json(accept):
        return JSONResponse(
            render_health_json(report), status_code=status_code, media_type=HEALTH_JSON_MEDIA_TYPE, headers=_NO_STORE
        )
    return JSONResponse(report, status_code=status_code, headers=_NO_STORE)


_LIVE = Liveness(status="ok")


class HealthResponder:
    """The health endpoint's responses, rendered once per report: while the service serves the same cached report
    (and the replica's state is unchanged), each request gets the same pre-rendered bytes, with no JSON encoding.
    ``answer`` serves one request as a bare ASGI app: the monitor's app sends probes of the health path there
    before its routing, middlewares and telemetry (probes are excluded from telemetry and open to anyone)."""

    def __init__(self, service: HealthService, replica: Callable[[], ReplicaStatus] | None = None) -> None:
        self._service, self._replica = service, replica
        self._report: dict[str, Any] | None = None
        # (replica's id, leader, ha; health+json?) -> the rendered response, for the report in ``_report``
        self._rendered: dict[tuple[tuple[str, bool, bool] | None, bool], JSONResponse] = {}

    async def response(self, accept: str | None) -> JSONResponse:
        """The response to a request with this Accept header: shared, never to be modified."""
        report = await self._service.report()
        replica = self._replica() if self._replica is not None else None
        key = ((replica.id, replica.leader, replica.ha) if replica is not None else None, wants_health_json(accept))
        if report is not self._report:
            self._report, self._rendered = report, {}
        rendered = self._rendered.get(key)
        if rendered is None:
            full = report if replica is None else {**report, "replica": replica.model_dump()}
            rendered = self._rendered[key] = health_response(full, HEALTH_JSON_MEDIA_TYPE if key[1] else None)
        return rendered

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serves a GET of the health path as the route would, without FastAPI's request handling."""
        accept = next((value for name, value in scope["headers"] if name == b"accept"), None)
        response = await self.response(accept.decode("latin-1") if accept is not None else None)
        await response(scope, receive, send)


def build_health_router(
    service: HealthService,
    replica: Callable[[], ReplicaStatus] | None = None,
    *,
    responder: HealthResponder | None = None,
) -> APIRouter:
    """The two endpoints over ``service``; include it in the app, and start/stop the service in its lifespan. With
    ``replica``, the report says which monitor replica answers and whether it leads. ``responder`` (built from
    ``service`` and ``replica`` when None) renders the report; pass the one the app's fast path shares."""
    router = APIRouter(tags=["health"])
    responder = responder or HealthResponder(service, replica)

    @router.get(
        HEALTH_PATH, summary="Health of the backend's dependencies", response_model=None, responses=_report_responses()
    )
    async def system_health(accept: Annotated[str | None, Header()] = None) -> Response:
        rendered = await responder.response(accept)  # shared: this request gets its own response of its bytes
        return Response(rendered.body, rendered.status_code, headers=_NO_STORE, media_type=rendered.media_type)

    @router.get(LIVENESS_PATH, summary="Liveness: the process serves; depends on nothing external")
    async def livez() -> Liveness:
        return _LIVE

    return router

"""The health endpoints: ``GET /api/v1/system/health`` (readiness of the dependencies) and ``GET /livez``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from otel_monitor.instrument.probe_paths import HEALTH_PATH, LIVENESS_PATH
from otel_monitor.monitor.health.service import HealthService
from otel_monitor.monitor.health.status import HEALTH_JSON_MEDIA_TYPE, http_status_code, render_health_json

__all__ = [
    "HEALTH_PATH",
    "LIVENESS_PATH",
    "CheckResult",
    "HealthReport",
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


def build_health_router(service: HealthService, replica: Callable[[], ReplicaStatus] | None = None) -> APIRouter:
    """The two endpoints over ``service``; include it in the app, and start/stop the service in its lifespan. With
    ``replica``, the report says which monitor replica answers and whether it leads."""
    router = APIRouter(tags=["health"])

    @router.get(
        HEALTH_PATH, summary="Health of the backend's dependencies", response_model=None, responses=_report_responses()
    )
    async def system_health(accept: Annotated[str | None, Header()] = None) -> JSONResponse:
        report = await service.report()
        if replica is not None:
            report = {**report, "replica": replica().model_dump()}
        return health_response(report, accept)

    @router.get(LIVENESS_PATH, summary="Liveness: the process serves; depends on nothing external")
    async def livez() -> Liveness:
        return _LIVE

    return router

"""``GET /api/v1/system/quota``: each provider's quota (docs/requirements.md, Endpoints), or 503 if the store fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from otel_monitor.instrument.providers import DEFAULT_PROVIDERS
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.quota.store import QuotaStoreError

__all__ = ["build_quota_router", "QUOTA_PATH", "MAX_HISTORY_HOURS", "QuotaReport", "QuotaStoreUnavailable"]

QUOTA_PATH = "/api/v1/system/quota"
MAX_HISTORY_HOURS = 720  # 30 days: a D-ID month

# A service key or its JSON spelling: d-id or d_id. The Literal is built from the providers at run time, which a
# type checker cannot follow: it sees the plain string the values are.
if TYPE_CHECKING:
    ServiceParam = str
else:
    ServiceParam = Literal[tuple(dict.fromkeys(name for p in DEFAULT_PROVIDERS for name in (p.key, p.json_key)))]


class QuotaReport(BaseModel):
    """Each provider's quota (used, total, remaining, reset, forecast, and its stored checks when asked) by its
    JSON key, at ``timestamp``."""

    timestamp: str
    quotas: dict[str, dict[str, Any]]


class QuotaStoreUnavailable(BaseModel):
    """The quota store could not be read: what failed, and which store."""

    error: str
    store: str


def build_quota_router(quota_service: QuotaService) -> APIRouter:
    """The quota router over ``quota_service``; bad query values get FastAPI's 422 JSON body."""
    router = APIRouter(tags=["quota"])

    @router.get(  # the report's dict as it is, or the 503 response
        QUOTA_PATH,
        response_model=None,
        responses={
            200: {"model": QuotaReport, "description": "the quotas"},
            503: {"model": QuotaStoreUnavailable, "description": "the quota store cannot be read"},
        },
    )
    async def get_quota(
        service: Annotated[ServiceParam | None, Query(description="only this provider")] = None,
        history_hours: Annotated[
            int | None,
            Query(ge=1, le=MAX_HISTORY_HOURS, description="add each provider's stored checks of these hours"),
        ] = None,
    ) -> dict[str, Any] | JSONResponse:
        try:
            return await quota_service.report(service=service, history_hours=history_hours)
        except QuotaStoreError as error:
            return JSONResponse({"error": str(error), "store": error.store}, status_code=503)

    return router

"""``POST/GET /api/v1/silences``, ``GET/DELETE /api/v1/silences/{id}``: silences added, listed (open maintenance
windows among them) and expired, over the app's alerting service."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from otel_monitor.monitor.alerting.silences.matchers import Matcher, parse_matcher
from otel_monitor.monitor.alerting.silences.model import Silence, SilenceState
from otel_monitor.monitor.alerting.silences.store import DEFAULT_SILENCE_LIMIT
from otel_monitor.monitor.alerting.silences.windows import MaintenanceWindow
from otel_monitor.monitor.api_errors import error_responses, invalid_body_field

if TYPE_CHECKING:
    from otel_monitor.monitor.alerting.silences.gate import SilenceGate

__all__ = ["SILENCES_PATH", "SilenceRequest", "SilenceView", "SilenceList", "build_silences_router", "silence_views"]

SILENCES_PATH = "/api/v1/silences"
_MAX_LIMIT = 1000
_ALERTING_OFF = "alerting is not enabled: there is nothing to silence"


class SilenceRequest(BaseModel):
    """A silence to add: ``starts_at`` defaults to now; times without an offset are UTC."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[Matcher] = Field(min_length=1, description="every one must match an alert for it to be held")
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime
    comment: str = Field(min_length=1, max_length=10_000)
    author: str = Field("", max_length=255)


class SilenceView(BaseModel):
    """A silence, or an open maintenance window of the config (``kind``; its times are its current opening's)."""

    id: str
    kind: Literal["silence", "maintenance_window"]
    state: SilenceState
    matchers: list[Matcher]
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    comment: str
    author: str
    created_at: dt.datetime | None

    @classmethod
    def of_silence(cls, silence: Silence, now: dt.datetime) -> SilenceView:
        return cls(
            id=silence.id,
            kind="silence",
            state=silence.state_at(now),
            matchers=list(silence.matchers),
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            comment=silence.comment,
            author=silence.author,
            created_at=silence.created_at,
        )

    @classmethod
    def of_window(cls, window: MaintenanceWindow) -> SilenceView:
        days = ",".join(window.days)
        return cls(
            id=window.id,
            kind="maintenance_window",
            state=SilenceState.ACTIVE,
            matchers=[parse_matcher(text) for text in window.matchers],
            starts_at=None,
            ends_at=None,
            comment=f"maintenance window {window.name}: {days} {window.start}-{window.end} {window.time_zone}",
            author="config",
            created_at=None,
        )


class SilenceList(BaseModel):
    silences: list[SilenceView]


def _gate(request: Request) -> SilenceGate | None:
    alerting = getattr(request.app.state, "alerting", None)
    return None if alerting is None else alerting.silences


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


async def silence_views(
    gate: SilenceGate, *, state: SilenceState | None = None, limit: int = DEFAULT_SILENCE_LIMIT
) -> list[SilenceView]:
    """The stored silences in ``state`` (all: None), newest first, after the open maintenance windows when active
    ones are asked for."""
    store = gate.store
    now = store.clock()
    silences = await store.executor.run(store.silences, state=state, limit=limit)
    views = [SilenceView.of_silence(silence, now) for silence in silences]
    if state in (None, SilenceState.ACTIVE):
        views = [SilenceView.of_window(window) for window in gate.open_windows(now)] + views
    return views


def build_silences_router() -> APIRouter:
    """The silences of ``app.state.alerting`` (while alerting is off: none listed, adding or expiring one answers
    409). Bad input answers FastAPI's 422 JSON, each error's ``loc`` naming the field; an unknown id 404."""
    router = APIRouter(tags=["silences"])

    @router.post(SILENCES_PATH, status_code=201, responses=error_responses(409))
    async def post_silence(request: Request, body: SilenceRequest) -> SilenceView:
        gate = _gate(request)
        if gate is None:
            raise HTTPException(409, _ALERTING_OFF)
        store = gate.store
        now = store.clock()
        starts_at = _utc(body.starts_at) if body.starts_at is not None else now
        ends_at = _utc(body.ends_at)
        if ends_at <= starts_at:
            raise invalid_body_field("ends_at", "must be after starts_at", body.ends_at)
        if ends_at <= now:
            raise invalid_body_field("ends_at", "must be in the future", body.ends_at)
        silence = await store.executor.run(
            store.add,
            tuple(body.matchers),
            starts_at=starts_at,
            ends_at=ends_at,
            comment=body.comment,
            author=body.author,
        )
        gate.invalidate()
        return SilenceView.of_silence(silence, now)

    @router.get(SILENCES_PATH)
    async def get_silences(
        request: Request,
        state: Annotated[SilenceState | None, Query(description="only silences in this state")] = None,
        limit: Annotated[int, Query(ge=1, le=_MAX_LIMIT, description="at most this many silences")] = (
            DEFAULT_SILENCE_LIMIT
        ),
    ) -> SilenceList:
        gate = _gate(request)
        return SilenceList(silences=[] if gate is None else await silence_views(gate, state=state, limit=limit))

    @router.get(SILENCES_PATH + "/{silence_id}", responses=error_responses(404))
    async def get_silence(request: Request, silence_id: str) -> SilenceView:
        gate = _gate(request)
        silence = None if gate is None else await gate.store.executor.run(gate.store.get, silence_id)
        if gate is None or silence is None:
            raise HTTPException(404, f"no silence {silence_id!r}")
        return SilenceView.of_silence(silence, gate.store.clock())

    @router.delete(SILENCES_PATH + "/{silence_id}", responses=error_responses(404, 409))
    async def delete_silence(request: Request, silence_id: str) -> SilenceView:
        """Expires the silence now: what it held is released at the next evaluation pass."""
        gate = _gate(request)
        if gate is None:
            raise HTTPException(409, _ALERTING_OFF)
        silence = await gate.store.executor.run(gate.store.expire, silence_id)
        if silence is None:
            raise HTTPException(404, f"no silence {silence_id!r}")
        gate.invalidate()
        return SilenceView.of_silence(silence, gate.store.clock())

    return router

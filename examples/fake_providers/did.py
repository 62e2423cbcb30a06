"""Fake D-ID server: talks (create, poll, result video), credits and D-ID's {kind, description} errors."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .faults import FaultState, fault_mode_of, install_faults

__all__ = ["DidAccount", "create_did_app"]

OWNER = "google-oauth2|100000000000000000001"
TALK_DURATION_SECONDS = 4.2
# The smallest thing that looks like an MP4 to a sniffer: one 'ftyp' box.
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> str:
    return _iso(datetime.now(UTC))


def _error(status: int, kind: str, description: str) -> JSONResponse:
    return JSONResponse({"kind": kind, "description": description}, status_code=status)


FAULT_ERRORS = {
    "invalid_key": (401, "AuthorizationError", "Unauthorized"),
    "quota": (402, "InsufficientCreditsError", "not enough credits"),
    "rate_limit": (429, "TooManyRequestsError", "Too Many Requests"),
    "server_error": (500, "UnknownError", "Internal Server Error"),
}


class DidAccount:
    """The credit balance behind the key; each accepted talk costs one credit. ``/credits`` lists the current pack
    (expiring ``expires_in_days`` from now; tests may set ``expire_at``), then last month's, spent and expiring
    sooner, as an account on a monthly plan has them."""

    def __init__(self, total: int = 100, remaining: int | None = None, expires_in_days: float = 30) -> None:
        self.total = total
        self.initial_remaining = total if remaining is None else remaining
        self._remaining = self.initial_remaining
        self._lock = threading.Lock()
        now = datetime.now(UTC)
        self.created_at = _iso(now)
        self.expire_at = _iso(now + timedelta(days=expires_in_days))
        self.spent_pack_expire_at = _iso(now + timedelta(days=1))

    @property
    def remaining(self) -> int:
        return self._remaining

    def try_charge(self) -> bool:
        with self._lock:
            if self._remaining < 1:
                return False
            self._remaining -= 1
            return True

    def refund(self) -> None:
        with self._lock:
            self._remaining += 1

    def reset(self) -> None:
        with self._lock:
            self._remaining = self.initial_remaining

    def as_json(self, drained: bool = False) -> dict:
        remaining = 0 if drained else self._remaining
        pack = {
            "owner_id": OWNER,
            "expire_at": self.expire_at,
            "created_at": self.created_at,
            "remaining": remaining,
            "total": self.total,
            "product_id": "prod_fake_api_plan",
            "price_id": "price_fake_monthly",
        }
        spent = {**pack, "expire_at": self.spent_pack_expire_at, "remaining": 0}
        return {"credits": [pack, spent], "remaining": remaining, "total": self.total}


@dataclass
class Talk:
    id: str
    source_url: str
    created_at: str
    fails: bool
    polls: int = 0


def _token_matches(token: str, expected: str) -> bool:
    """D-ID's key is ``user:pass``; clients send it raw or base64-encoded after ``Basic ``. Accept either spelling."""

    def spellings(value: str) -> set[str]:
        encoded = base64.b64encode(value.encode()).decode()
        found = {value, encoded, encoded.rstrip("=")}
        with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
            found.add(base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode())
        return found

    return bool(spellings(token) & spellings(expected))


def create_did_app(expected_key: str, faults: FaultState | None = None, account: DidAccount | None = None) -> FastAPI:
    """The fake D-ID API; requires ``Authorization: Basic <expected_key>``."""
    faults = faults or FaultState()
    account = account or DidAccount()
    talks: dict[str, Talk] = {}
    lock = threading.Lock()

    def forget_talks() -> None:
        account.reset()
        with lock:
            talks.clear()

    app = FastAPI(title="fake d-id", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.account = account
    install_faults(app, faults, on_reset=forget_talks)

    def denied(request: Request, *, quota_applies: bool = True) -> JSONResponse | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not _token_matches(token.strip(), expected_key):
            return _error(*FAULT_ERRORS["invalid_key"])
        mode = fault_mode_of(request)
        if mode in FAULT_ERRORS and (quota_applies or mode != "quota"):
            return _error(*FAULT_ERRORS[mode])
        return None

    @app.post("/talks")
    async def create_talk(request: Request) -> JSONResponse:
        if refusal := denied(request):
            return refusal
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "ValidationError", "invalid JSON body")
        if not isinstance(body, dict) or not body.get("source_url"):
            return _error(400, "ValidationError", "source_url is required")
        if not isinstance(body.get("script"), dict) or not body["script"].get("type"):
            return _error(400, "ValidationError", "script is required")
        if not account.try_charge():
            return _error(*FAULT_ERRORS["quota"])
        talk = Talk(
            id=f"tlk_{secrets.token_urlsafe(15)}",
            source_url=body["source_url"],
            created_at=_now(),
            fails=fault_mode_of(request) == "partial",
        )
        with lock:
            talks[talk.id] = talk
        return JSONResponse(
            {"id": talk.id, "object": "talk", "created_at": talk.created_at, "created_by": OWNER, "status": "created"},
            status_code=201,
        )

    @app.get("/talks/{talk_id}")
    def get_talk(talk_id: str, request: Request) -> JSONResponse:
        """First poll reports ``started``; later polls ``done`` (or ``error`` for talks created in partial mode)."""
        if refusal := denied(request, quota_applies=False):
            return refusal
        with lock:
            talk = talks.get(talk_id)
            if talk is None:
                return _error(404, "NotFoundError", "not found")
            talk.polls += 1
            polls = talk.polls
        if polls == 2 and talk.fails:
            account.refund()  # D-ID returns the credit of a talk that ends in error
        body = {
            "id": talk.id,
            "object": "talk",
            "created_at": talk.created_at,
            "created_by": OWNER,
            "user_id": OWNER,
            "source_url": talk.source_url,
            "modified_at": _now(),
            "status": "started",
        }
        if polls == 1:
            return JSONResponse(body)
        if talk.fails:
            return JSONResponse(
                {**body, "status": "error", "error": {"kind": "FaceError", "description": "Face not detected"}}
            )
        result_url = f"{str(request.base_url).rstrip('/')}/results/{talk.id}.mp4"
        return JSONResponse(
            {
                **body,
                "status": "done",
                "started_at": talk.created_at,
                "result_url": result_url,
                "duration": TALK_DURATION_SECONDS,
            }
        )

    @app.get("/results/{talk_id}.mp4")
    def result_video(talk_id: str) -> Response:
        if talk_id not in talks:
            return Response(status_code=404)
        return Response(FAKE_MP4, media_type="video/mp4")

    @app.get("/credits")
    def credits(request: Request) -> JSONResponse:
        """In quota mode the balance reads as drained rather than failing."""
        if refusal := denied(request, quota_applies=False):
            return refusal
        return JSONResponse(account.as_json(drained=fault_mode_of(request) == "quota"))

    return app

"""Fake Stability AI v1 REST server: text-to-image, user balance and Stability's {id, name, message} errors."""

from __future__ import annotations

import base64
import json
import random
import struct
import threading
import uuid
import zlib

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .faults import FaultState, fault_mode_of, install_faults

__all__ = ["StabilityAccount", "create_stability_app"]

RATE_LIMIT_MESSAGE = "You have exceeded the rate limit of 150 requests within a 10 second period"
LOW_BALANCE_MESSAGE = (
    "You lack sufficient credits to make this request. "
    "Please purchase more credits at https://platform.stability.ai/account/credits and try again."
)


def _tiny_png(size: int = 8) -> bytes:
    """A valid, solid-grey ``size`` x ``size`` PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    pixels = b"".join(b"\x00" + b"\x80" * size for _ in range(size))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


PNG = _tiny_png()
PNG_BASE64 = base64.b64encode(PNG).decode("ascii")


class StabilityAccount:
    """The credit balance behind the key; each returned artifact costs ``cost_per_image``."""

    def __init__(self, credits: float = 100.0, cost_per_image: float = 0.2) -> None:
        self.initial_credits = credits
        self.cost_per_image = cost_per_image
        self._credits = credits
        self._lock = threading.Lock()

    @property
    def credits(self) -> float:
        return self._credits

    def try_charge(self, images: int) -> bool:
        with self._lock:
            cost = images * self.cost_per_image
            if cost > self._credits + 1e-9:
                return False
            self._credits -= cost
            return True

    def reset(self) -> None:
        with self._lock:
            self._credits = self.initial_credits


def _error(status: int, name: str, message: str) -> JSONResponse:
    return JSONResponse({"id": str(uuid.uuid4()), "name": name, "message": message}, status_code=status)


def _fault_error(mode: str) -> JSONResponse | None:
    if mode == "quota":
        return _error(402, "payment_required", LOW_BALANCE_MESSAGE)
    if mode == "rate_limit":
        return _error(429, "rate_limit_exceeded", RATE_LIMIT_MESSAGE)
    if mode == "server_error":
        return _error(500, "server_error", "An unexpected server error occurred, please try again.")
    return None


def _artifacts(samples: int, seed: int, partial: bool) -> list[dict]:
    """In partial mode every odd-indexed artifact (2 of 5) comes back CONTENT_FILTERED, as the real API marks them."""
    base_seed = seed or random.randint(1, 2**32 - 1)
    return [
        {
            "base64": PNG_BASE64,
            "seed": (base_seed + index) % 2**32,
            "finishReason": "CONTENT_FILTERED" if partial and index % 2 == 1 else "SUCCESS",
        }
        for index in range(samples)
    ]


def _parse_samples(body: dict) -> int | str:
    samples = body.get("samples", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 10:
        return "samples: must be an integer between 1 and 10"
    prompts = body.get("text_prompts")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, dict) and p.get("text") for p in prompts):
        return "text_prompts: is required"
    return samples


def create_stability_app(
    expected_key: str, faults: FaultState | None = None, account: StabilityAccount | None = None
) -> FastAPI:
    """The fake Stability v1 API; requires ``Authorization: Bearer <expected_key>``."""
    faults = faults or FaultState()
    account = account or StabilityAccount()
    app = FastAPI(title="fake stability", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.account = account
    install_faults(app, faults, on_reset=account.reset)

    def auth_error(request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization")
        if not header:
            return _error(401, "unauthorized", "missing authorization header")
        scheme, _, token = header.partition(" ")
        mode = fault_mode_of(request)
        if mode == "echo_key":
            return _error(401, "unauthorized", f"Incorrect API key provided: {token.strip()}")
        if scheme.lower() != "bearer" or token.strip() != expected_key or mode == "invalid_key":
            return _error(401, "unauthorized", "Incorrect API key provided")
        return None

    @app.post("/v1/generation/{engine_id}/text-to-image")
    async def text_to_image(engine_id: str, request: Request) -> Response:
        if (denied := auth_error(request)) or (denied := _fault_error(fault_mode_of(request))):
            return denied
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "bad_request", "invalid JSON body")
        samples = _parse_samples(body if isinstance(body, dict) else {})
        if isinstance(samples, str):
            return _error(400, "bad_request", samples)
        wants_png = "image/png" in request.headers.get("accept", "")
        if wants_png and samples > 1:
            return _error(
                400,
                "invalid_samples",
                "Sample count may only be greater than 1 when the accept header is set to `application/json`",
            )
        if not account.try_charge(samples):
            return _error(402, "payment_required", LOW_BALANCE_MESSAGE)
        artifacts = _artifacts(samples, int(body.get("seed") or 0), partial=fault_mode_of(request) == "partial")
        if wants_png:
            only = artifacts[0]
            return Response(
                PNG, media_type="image/png", headers={"Finish-Reason": only["finishReason"], "Seed": str(only["seed"])}
            )
        return JSONResponse({"artifacts": artifacts})

    @app.get("/v1/user/balance")
    def balance(request: Request) -> JSONResponse:
        """In quota mode the account reads as empty rather than failing, like a real drained account."""
        mode = fault_mode_of(request)
        if (denied := auth_error(request)) or (mode != "quota" and (denied := _fault_error(mode))):
            return denied
        return JSONResponse({"credits": 0.0 if mode == "quota" else account.credits})

    return app

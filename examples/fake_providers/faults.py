"""Fault injection shared by every fake provider: the fault mode, a latency cycle, request counts and /_fake routes."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FAULT_MODES", "FaultMode", "FaultSettings", "FaultState", "fault_mode_of", "install_faults"]

# echo_key (Gemini, Stability): the key is refused and quoted back in the error body, as some providers do.
# token_rate_limit (Gemini): the per-minute input-token limit; upload_limit (YouTube): the channel's daily uploads.
FaultMode = Literal[
    "ok",
    "invalid_key",
    "echo_key",
    "quota",
    "rate_limit",
    "token_rate_limit",
    "upload_limit",
    "server_error",
    "timeout",
    "partial",
]
FAULT_MODES: tuple[str, ...] = FaultMode.__args__  # type: ignore[attr-defined]

CONTROL_PREFIX = "/_fake/"
DEFAULT_HANG_SECONDS = 30.0

Seconds = Annotated[float, Field(ge=0)]


class FaultState:
    """The fault configuration of one fake server; safe to read and change from any thread."""

    def __init__(
        self,
        mode: str = "ok",
        latencies: Sequence[float] = (0.0,),
        hang_seconds: float = DEFAULT_HANG_SECONDS,
    ) -> None:
        self._lock = threading.Lock()
        self._mode = "ok"
        self._latencies: tuple[float, ...] = (0.0,)
        self._hang_seconds = DEFAULT_HANG_SECONDS
        self._next_latency = 0
        self._requests: Counter[str] = Counter()
        # Set while the server shuts down: pending latencies and hangs end at once, so requests are answered.
        self.released = False
        self.configure(mode=mode, latencies=latencies, hang_seconds=hang_seconds)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def latencies(self) -> list[float]:
        return list(self._latencies)

    @property
    def hang_seconds(self) -> float:
        return self._hang_seconds

    def configure(
        self,
        mode: str | None = None,
        latencies: Sequence[float] | None = None,
        hang_seconds: float | None = None,
    ) -> dict:
        """Change any of the settings (None keeps the current value); returns the new settings."""
        if mode is not None and mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; known: {list(FAULT_MODES)}")
        if latencies is not None and (not latencies or any(s < 0 for s in latencies)):
            raise ValueError("latencies must be a non-empty list of seconds >= 0")
        if hang_seconds is not None and hang_seconds < 0:
            raise ValueError("hang_seconds must be >= 0")
        with self._lock:
            if mode is not None:
                self._mode = mode
            if latencies is not None:
                self._latencies = tuple(float(s) for s in latencies)
                self._next_latency = 0
            if hang_seconds is not None:
                self._hang_seconds = float(hang_seconds)
            return self._settings()

    def reset(self) -> dict:
        """Back to mode ok, no latency, the default hang and no counted requests."""
        with self._lock:
            self._mode = "ok"
            self._latencies = (0.0,)
            self._next_latency = 0
            self._hang_seconds = DEFAULT_HANG_SECONDS
            self._requests.clear()
            return self._settings()

    def admit(self, path: str) -> tuple[str, float]:
        """Count a provider request; returns the mode it is served in and how long to wait before answering."""
        with self._lock:
            self._requests[path] += 1
            delay = self._latencies[self._next_latency % len(self._latencies)]
            self._next_latency += 1
            if self._mode == "timeout":
                delay += self._hang_seconds
            return self._mode, delay

    def stats(self) -> dict:
        with self._lock:
            return {"requests": dict(self._requests), **self._settings()}

    def _settings(self) -> dict:
        return {"mode": self._mode, "latencies": list(self._latencies), "hang_seconds": self._hang_seconds}


class FaultSettings(BaseModel):
    """Body of ``POST /_fake/fault``; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    mode: FaultMode | None = None
    latencies: Annotated[list[Seconds], Field(min_length=1)] | None = None
    hang_seconds: Seconds | None = None


class _FaultMiddleware:
    """Counts each provider request and delays it by the next latency (plus the hang in timeout mode)."""

    def __init__(self, app, state: FaultState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CONTROL_PREFIX):
            mode, delay = self.state.admit(scope["path"])
            scope.setdefault("state", {})["fault_mode"] = mode
            await self._wait(delay)
        await self.app(scope, receive, send)

    async def _wait(self, delay: float) -> None:
        """Sleep ``delay`` seconds in short slices, so a shutting-down server answers instead of cancelling."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while not self.state.released and (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(left, 0.05))


def fault_mode_of(request) -> str:
    """The mode a request was admitted in; a request that outlived a timeout hang is answered normally."""
    mode = getattr(request.state, "fault_mode", "ok")
    return "ok" if mode == "timeout" else mode


def install_faults(app: FastAPI, state: FaultState, on_reset: Callable[[], None] | None = None) -> None:
    """Add the fault middleware and the /_fake/fault, /_fake/stats and /_fake/reset control routes."""
    app.state.faults = state
    app.add_middleware(_FaultMiddleware, state=state)

    @app.post("/_fake/fault", include_in_schema=False)
    def set_fault(settings: FaultSettings) -> dict:
        return state.configure(**settings.model_dump(exclude_none=True))

    @app.get("/_fake/stats", include_in_schema=False)
    def get_stats() -> dict:
        return state.stats()

    @app.post("/_fake/reset", include_in_schema=False)
    def reset() -> dict:
        settings = state.reset()
        if on_reset is not None:
            on_reset()
        return settings

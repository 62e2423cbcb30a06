"""The monitor's dead man's switch: a URL pinged on an interval, so an outside watcher notices when the monitor dies."""

from __future__ import annotations

import asyncio
from typing import Literal

import httpx

from otel_monitor.logs.logger import StructuredLogger

__all__ = ["Heartbeat", "HeartbeatMethod"]

_log = StructuredLogger("otel_monitor.alerting.heartbeat")

HeartbeatMethod = Literal["GET", "POST"]


class Heartbeat:
    """Pings ``url`` with ``method`` every ``interval_seconds`` until stopped; a failing ping is logged, never raised.

    The first ping goes out at once, so a watcher sees the monitor as soon as it starts. Failures are logged when
    they start and when the pings succeed again, not on every beat.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        interval_seconds: float = 60.0,
        method: HeartbeatMethod = "GET",
        timeout_seconds: float = 10.0,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.url = url
        self.method = method
        self.interval_seconds = interval_seconds
        self._client = client
        self._timeout = timeout_seconds
        self._failing = False

    async def ping(self) -> bool:
        """One ping; True when the watcher answered 2xx."""
        try:
            response = await self._client.request(self.method, self.url, timeout=self._timeout)
            ok = response.is_success
            error = None if ok else f"HTTP {response.status_code}"
        except Exception as exc:  # the watcher being down must never touch the monitor
            ok, error = False, repr(exc)
        if not ok and not self._failing:
            _log.warning("Heartbeat ping failed", url=self.url, error=error)
        elif ok and self._failing:
            _log.info("Heartbeat ping works again", url=self.url)
        self._failing = not ok
        return ok

    async def run(self, stop: asyncio.Event) -> None:
        """Pings until ``stop`` is set."""
        while not stop.is_set():
            await self.ping()
            try:
                await asyncio.wait_for(stop.wait(), self.interval_seconds)
            except TimeoutError:
                pass

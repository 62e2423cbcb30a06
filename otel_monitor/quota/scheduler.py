"""The polling cadence: one asyncio task per provider, polling at once and then every interval, never dying."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from otel_monitor.structured_logging import StructuredLogger

__all__ = ["PollScheduler"]

_log = StructuredLogger("otel_monitor.quota.scheduler")


class PollScheduler:
    """Runs each job (name -> (interval seconds, coroutine function)) in its own task until stop()."""

    def __init__(self, jobs: Mapping[str, tuple[float, Callable[[], Awaitable[object]]]], *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        for name, (interval, _poll) in jobs.items():
            if interval <= 0:
                raise ValueError(f"{name}: poll interval must be positive, got {interval!r}")
        self._jobs = dict(jobs)
        self._sleep = sleep
        self._tasks: dict[str, asyncio.Task] = {}

    @property
    def intervals(self) -> dict[str, float]:
        """Seconds between polls, per job."""
        return {name: interval for name, (interval, _poll) in self._jobs.items()}

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks.values())

    async def start(self) -> None:
        if self._tasks:
            return
        for name, (interval, poll) in self._jobs.items():
            self._tasks[name] = asyncio.create_task(self._loop(name, interval, poll), name=f"quota-poll-{name}")

    async def stop(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, name: str, interval: float, poll: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed poll must not end the polling
                _log.error("Quota poll failed", service=name, reason=f"{type(exc).__name__}: {exc}"[:300])
            await self._sleep(interval)

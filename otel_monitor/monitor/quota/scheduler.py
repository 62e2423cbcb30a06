"""The polling cadence: one asyncio task per provider, polling at once and then every interval, never dying."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.task_stopping import cancel_and_wait

__all__ = ["PollScheduler", "Interval"]

_log = StructuredLogger("otel_monitor.quota.scheduler")

# Seconds between polls: fixed, or asked again while waiting (a quota past 80 % shortens the wait under way).
Interval = float | Callable[[], float]


def _seconds(interval: Interval) -> float:
    return float(interval() if callable(interval) else interval)


class PollScheduler:
    """Runs each job (name -> (interval, coroutine function)) in its own task until stop().

    A callable interval is asked again at least every ``recheck_seconds`` of the wait, so a job whose interval
    shrinks (its quota passed 80 %) is polled by the new interval counted from its last poll, not after the old one.
    """

    def __init__(
        self,
        jobs: Mapping[str, tuple[Interval, Callable[[], Awaitable[object]]]],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        recheck_seconds: float = 60.0,
    ) -> None:
        for name, (interval, _poll) in jobs.items():
            if _seconds(interval) <= 0:
                raise ValueError(f"{name}: poll interval must be positive, got {_seconds(interval)!r}")
        self._jobs = dict(jobs)
        self._sleep = sleep
        self._recheck = recheck_seconds
        self._tasks: dict[str, asyncio.Task] = {}

    @property
    def intervals(self) -> dict[str, float]:
        """Seconds between polls now, per job."""
        return {name: _seconds(interval) for name, (interval, _poll) in self._jobs.items()}

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
        await cancel_and_wait(*tasks)

    async def _loop(self, name: str, interval: Interval, poll: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed poll must not end the polling
                _log.error("Quota poll failed", service=name, reason=f"{type(exc).__name__}: {exc}"[:300])
            await self._wait(interval)

    async def _wait(self, interval: Interval) -> None:
        if not callable(interval):
            await self._sleep(interval)
            return
        waited = 0.0
        while waited < (due := _seconds(interval)):
            step = min(due - waited, self._recheck)
            await self._sleep(step)
            waited += step

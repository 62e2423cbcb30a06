"""Consecutive failures per provider, shared by every process of the backend through Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from otel_monitor.instrument.redis_writer import RedisWriter

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

__all__ = [
    "Streak",
    "FailureStreaks",
    "LocalFailureStreaks",
    "RedisFailureStreaks",
    "failure_streaks_from_url",
    "DEFAULT_PEAK_TTL_SECONDS",
]

_log = logging.getLogger(__name__)

# How long the peak of a streak that a success ended stays visible. Streak rules are evaluated every 5 s (the P0
# cadence): a streak that passes a threshold and ends between two evaluations is still seen by a dozen of them.
DEFAULT_PEAK_TTL_SECONDS = 60.0

# On a success: keep the ending streak as the recent peak when it is the largest one that ended lately (with its
# last failing trace, both expiring together), then reset the count. Atomic, so concurrent processes cannot lose
# a peak. KEYS: count, last trace, peak, peak trace; ARGV: peak time to live (ms). Returns the count that ended.
_END_STREAK_LUA = """
local ending = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if ending > 0 and ending >= (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) then
  redis.call('SET', KEYS[3], ending, 'PX', ARGV[1])
  redis.call('SET', KEYS[4], redis.call('GET', KEYS[2]) or '', 'PX', ARGV[1])
end
redis.call('SET', KEYS[1], 0)
return ending
"""


@dataclass(frozen=True)
class Streak:
    """How many calls in a row failed, and the trace of the last failing one.

    ``ended``: the count is the peak of a streak that a success ended within the last minute (kept so a streak
    that ends between two evaluations of a rule is still seen), not one still running.
    """

    count: int
    last_trace_id: str | None = None
    ended: bool = False


class FailureStreaks(Protocol):
    """What tracked calls report to and the monitor reads: process-local or shared through Redis."""

    def record(self, service: str, failed: bool, trace_id: str | None = None) -> int: ...

    def current(self, service: str) -> Streak: ...

    def shared(self, services: Sequence[str]) -> dict[str, Streak]: ...


# No call failing (a Streak is immutable: one instance serves every service, and a success allocates nothing).
_NO_STREAK = Streak(0)


def _larger(running: Streak, peak: Streak) -> Streak:
    """What ``current`` answers: the running streak, or a recent peak larger than it."""
    return peak if peak.count > running.count else running


class LocalFailureStreaks:
    """Streaks of this process only; for one-process backends and as the fallback when Redis is away."""

    def __init__(
        self, *, peak_ttl: float = DEFAULT_PEAK_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._streaks: dict[str, Streak] = {}
        self._peaks: dict[str, tuple[Streak, float]] = {}  # service -> (peak of an ended streak, expires at)
        self._peak_ttl = peak_ttl
        self._clock = clock

    def record(self, service: str, failed: bool, trace_id: str | None = None) -> int:
        with self._lock:
            previous = self._streaks.get(service, _NO_STREAK)
            if not failed:
                if previous.count and previous.count >= self._peak(service).count:
                    self._peaks[service] = (
                        Streak(previous.count, previous.last_trace_id, ended=True),
                        self._clock() + self._peak_ttl,
                    )
                self._streaks[service] = _NO_STREAK
                return 0
            streak = Streak(previous.count + 1, trace_id or previous.last_trace_id)
            self._streaks[service] = streak
            return streak.count

    def _peak(self, service: str) -> Streak:
        peak, expires = self._peaks.get(service, (Streak(0), 0.0))
        return peak if self._clock() < expires else Streak(0)

    def current(self, service: str) -> Streak:
        """The running streak, or the peak of one that ended within ``peak_ttl`` seconds if that is larger."""
        with self._lock:
            return _larger(self._streaks.get(service, Streak(0)), self._peak(service))

    def shared(self, services: Sequence[str]) -> dict[str, Streak]:
        """``current`` of each service (the same answer for a process-local count)."""
        return {service: self.current(service) for service in services}


class RedisFailureStreaks:
    """Streaks kept in Redis, so failures of several processes (uvicorn workers, Celery children) add up.

    A failure is ``INCR``, a success ends the streak: Redis orders the updates of all processes. The ending count
    is kept for ``peak_ttl`` seconds as the service's recent peak (the largest that ended meanwhile, with its last
    failing trace), so a reader polling every few seconds cannot miss a streak that ended between two polls. The
    host never waits on Redis: updates go through a RedisWriter (in the order this process made them), and
    ``record`` returns this process's own count. ``current`` reads Redis (the gauge does; the host does not);
    with Redis away it answers the local count and does not retry for ``retry_after`` seconds. ``shared`` reads
    Redis too, for the monitor, and raises when Redis does not answer (an unknown streak is not a streak of 0).
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "otel_monitor:failure_streak",
        retry_after: float = 30.0,
        peak_ttl: float = DEFAULT_PEAK_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        writer: RedisWriter | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._retry_after = retry_after
        self._peak_ttl_ms = max(1, int(peak_ttl * 1000))
        self._clock = clock
        self._down_until = 0.0
        self._fallback = LocalFailureStreaks(peak_ttl=peak_ttl, clock=clock)
        self._writer = writer or RedisWriter(client)

    def _keys(self, service: str) -> tuple[str, str, str, str]:
        base = f"{self._prefix}:{service}"
        return f"{base}:count", f"{base}:last_trace_id", f"{base}:peak", f"{base}:peak_trace_id"

    def record(self, service: str, failed: bool, trace_id: str | None = None) -> int:
        local = self._fallback.record(service, failed, trace_id)
        keys = self._keys(service)

        def update(pipe: Pipeline) -> None:
            if not failed:
                # EVAL with the text: one command in the writer's pipeline (Redis caches the compiled script).
                pipe.eval(_END_STREAK_LUA, len(keys), *keys, self._peak_ttl_ms)
                return
            pipe.incr(keys[0])
            if trace_id:
                pipe.set(keys[1], trace_id)

        self._writer.submit(update)
        return local

    def flush(self, timeout: float = 5.0) -> None:
        self._writer.flush(timeout)

    def shared(self, services: Sequence[str]) -> dict[str, Streak]:
        """Each service's streak in Redis (running, or a larger recent peak); raises if Redis does not answer."""
        keys = [key for service in services for key in self._keys(service)]
        values = self._client.mget(keys) if keys else []
        return {service: _from_redis(values[4 * i : 4 * i + 4]) for i, service in enumerate(services)}

    def current(self, service: str) -> Streak:
        if self._clock() < self._down_until:
            return self._fallback.current(service)
        try:
            return self.shared([service])[service]
        except Exception as exc:
            self._down_until = self._clock() + self._retry_after
            _log.warning(
                "failure streaks: Redis unavailable (%s); answering this process's count for %.0f s",
                type(exc).__name__,
                self._retry_after,
            )
            return self._fallback.current(service)

    def reset(self, services: Iterable[str]) -> None:
        for service in services:
            self._client.delete(*self._keys(service))


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _from_redis(values: Sequence[bytes | str | None]) -> Streak:
    count_text, trace_id, peak_text, peak_trace_id = values
    count, peak = int(count_text or 0), int(peak_text or 0)
    running = Streak(count, _text(trace_id) if count else None)
    return _larger(running, Streak(peak, _text(peak_trace_id) or None, ended=True))


def failure_streaks_from_url(
    redis_url: str | None, *, timeout: float = 0.25
) -> LocalFailureStreaks | RedisFailureStreaks:
    """Redis-backed streaks for a URL, or process-local ones when no URL is given."""
    if not redis_url:
        return LocalFailureStreaks()
    from otel_monitor.instrument.redis_client import telemetry_redis

    return RedisFailureStreaks(telemetry_redis(redis_url, timeout=timeout))

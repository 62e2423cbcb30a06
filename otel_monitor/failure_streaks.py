"""Consecutive failures per provider, shared by every process of the backend through Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from otel_monitor.redis_writer import RedisWriter

__all__ = ["Streak", "LocalFailureStreaks", "RedisFailureStreaks", "failure_streaks_from_url"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Streak:
    """How many calls in a row failed, and the trace of the last failing one."""

    count: int
    last_trace_id: str | None = None


class LocalFailureStreaks:
    """Streaks of this process only; for one-process backends and as the fallback when Redis is away."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streaks: dict[str, Streak] = {}

    def record(self, service: str, failed: bool, trace_id: str | None = None) -> int:
        with self._lock:
            if not failed:
                self._streaks[service] = Streak(0)
                return 0
            previous = self._streaks.get(service, Streak(0))
            streak = Streak(previous.count + 1, trace_id or previous.last_trace_id)
            self._streaks[service] = streak
            return streak.count

    def current(self, service: str) -> Streak:
        with self._lock:
            return self._streaks.get(service, Streak(0))


class RedisFailureStreaks:
    """Streaks kept in Redis, so failures of several processes (uvicorn workers, Celery children) add up.

    A failure is ``INCR``, a success resets to 0: Redis orders the updates of all processes. The host never
    waits on Redis: updates go through a RedisWriter (in the order this process made them), and ``record``
    returns this process's own count. ``current`` reads Redis (the monitor and the gauge do; the host does not);
    with Redis away it answers the local count and does not retry for ``retry_after`` seconds.
    """

    def __init__(self, client, *, prefix: str = "otel_monitor:failure_streak", retry_after: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, writer: RedisWriter | None = None) -> None:
        self._client = client
        self._prefix = prefix
        self._retry_after = retry_after
        self._clock = clock
        self._down_until = 0.0
        self._fallback = LocalFailureStreaks()
        self._writer = writer or RedisWriter(client)

    def _keys(self, service: str) -> tuple[str, str]:
        return f"{self._prefix}:{service}:count", f"{self._prefix}:{service}:last_trace_id"

    def record(self, service: str, failed: bool, trace_id: str | None = None) -> int:
        local = self._fallback.record(service, failed, trace_id)
        count_key, trace_key = self._keys(service)

        def update(pipe) -> None:
            if not failed:
                pipe.set(count_key, 0)
                return
            pipe.incr(count_key)
            if trace_id:
                pipe.set(trace_key, trace_id)

        self._writer.submit(update)
        return local

    def flush(self, timeout: float = 5.0) -> None:
        self._writer.flush(timeout)

    def current(self, service: str) -> Streak:
        if self._clock() < self._down_until:
            return self._fallback.current(service)
        count_key, trace_key = self._keys(service)
        try:
            count, trace_id = self._client.mget(count_key, trace_key)
        except Exception as exc:
            self._down_until = self._clock() + self._retry_after
            _log.warning("failure streaks: Redis unavailable (%s); answering this process's count for %.0f s",
                         type(exc).__name__, self._retry_after)
            return self._fallback.current(service)
        count = int(count or 0)
        trace = trace_id.decode() if isinstance(trace_id, bytes) else trace_id
        return Streak(count, trace if count else None)

    def reset(self, services: Iterable[str]) -> None:
        for service in services:
            self._client.delete(*self._keys(service))


def failure_streaks_from_url(redis_url: str | None, *, timeout: float = 0.25):
    """Redis-backed streaks for a URL, or process-local ones when no URL is given."""
    if not redis_url:
        return LocalFailureStreaks()
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return RedisFailureStreaks(client)

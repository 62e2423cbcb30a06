"""The Redis check: the backend's Redis answers ``PING`` on a new connection; and the client the checks use."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.monitor.health.checks.base import (
    BACKSTOP_SECONDS,
    BaseCheck,
    confirmed_latency_ms,
    describe_error,
    latency_result,
    register_url_secret,
)
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCheck", "redis_client"]


def redis_client(url: str) -> Redis:
    """A redis.asyncio client for one check: bounded sockets, no retries."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # No retries: a check reports what it sees now; the next check is the retry.
    return Redis.from_url(
        url, socket_connect_timeout=BACKSTOP_SECONDS, socket_timeout=BACKSTOP_SECONDS, retry=Retry(NoBackoff(), 0)
    )


class RedisCheck(BaseCheck):
    """Redis answers ``PING`` on a new connection (redis.asyncio); latency covers connect and PING."""

    name = "redis"
    error_code = SystemErrorCode.REDIS_CONNECTION_FAILED
    _fields = ("latency_ms",)

    def __init__(
        self, url: str, *, latency_degraded_ms: float = 100.0, scrubber: SecretScrubber = default_scrubber
    ) -> None:
        self._url = url
        self._latency_degraded_ms = latency_degraded_ms
        self._scrubber = scrubber
        register_url_secret(url, scrubber)

    async def run(self) -> dict[str, Any]:
        from redis.exceptions import RedisError

        try:
            latency_ms = await confirmed_latency_ms(self._connect_and_ping, self._latency_degraded_ms)
        except (RedisError, OSError) as exc:
            return self.failed(describe_error(exc, self._scrubber))
        return latency_result(latency_ms, self._latency_degraded_ms)

    async def _connect_and_ping(self) -> float:
        started = time.perf_counter()
        client = redis_client(self._url)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return (time.perf_counter() - started) * 1000

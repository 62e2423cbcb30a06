"""The Redis client telemetry uses: short timeouts and no backoff, so a Redis that is away costs a fraction of a
second, never the seconds redis-py's default retries (three, with exponential backoff since redis-py 6) spend."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["telemetry_redis"]

# One immediate retry: a pooled connection that Redis closed (a restart) is replaced without losing the command.
_IMMEDIATE_RETRIES = 1


def telemetry_redis(url: str, *, timeout: float = 0.25) -> Redis:
    """A client for ``url`` that waits at most about ``timeout`` seconds per try, and tries twice at most."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), _IMMEDIATE_RETRIES),
    )

"""The Celery check: workers consuming the configured queues, pending tasks and stalled queues (Redis broker).

Workers are counted with ``inspect active_queues`` (only workers consuming a configured queue count), pending tasks
with ``LLEN`` of the queue lists in the Redis broker (priority lists included), and a queue's age from its oldest
message (``LINDEX queue -1``): the ``otel_monitor_published_at`` header stamped at publish (``publish_stamp.py``),
else the time this check first saw that message at the head of the list (so un-stamped messages are aged too, from
the second check on).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.instrument.publish_stamp import PUBLISHED_AT_HEADER
from otel_monitor.monitor.health.checks.base import BaseCheck, describe_error, register_url_secret
from otel_monitor.monitor.health.checks.redis import redis_client
from otel_monitor.monitor.health.status import DEGRADED, HEALTHY, UNHEALTHY, worst_status
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["CeleryCheck"]

# kombu's Redis transport: a queue's priority lists are "<queue>\x06\x16<priority>" (default steps 0, 3, 6, 9).
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def _message_identity(raw: bytes, message: dict[str, Any]) -> str:
    headers = message.get("headers") or {}
    properties = message.get("properties") or {}
    identity = headers.get("id") or properties.get("correlation_id")
    return str(identity) if identity else hashlib.sha1(raw).hexdigest()


def _parse_message(raw: bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return message if isinstance(message, dict) else {}


def _published_at(message: dict[str, Any]) -> float | None:
    stamp = (message.get("headers") or {}).get(PUBLISHED_AT_HEADER)
    try:
        return float(stamp) if stamp is not None else None
    except (TypeError, ValueError):
        return None


class CeleryCheck(BaseCheck):
    """Workers consuming the configured queues (inspect active_queues), pending tasks and stalls (the Redis broker)."""

    name = "celery"
    error_code = SystemErrorCode.CELERY_WORKER_DOWN
    _fields = ("active_workers", "pending_tasks")

    def __init__(
        self,
        broker_url: str,
        *,
        queues: Sequence[str] = ("celery",),
        inspect_timeout: float = 0.5,
        degraded_above: int = 50,
        critical_above: int = 100,
        critical_status: str = DEGRADED,
        stall_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
        app: Any = None,
        scrubber: SecretScrubber = default_scrubber,
    ) -> None:
        from celery import Celery

        self._broker_url = broker_url
        self._queues = tuple(queues)
        self._lists = {
            queue: (queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS))
            for queue in self._queues
        }
        self._inspect_timeout = inspect_timeout
        self._degraded_above = degraded_above
        self._critical_above = critical_above
        self._critical_status = critical_status
        self._stall_seconds = stall_seconds
        self._clock = clock
        self._scrubber = scrubber
        # Only the control side of Celery is used: any app on the same broker reaches the same workers.
        self._app = app or Celery("otel_monitor_health", broker=broker_url, set_as_current=False)
        # list name -> (id of the message at its head, when first seen there)
        self._first_seen: dict[str, tuple[str, float]] = {}
        # An inspect left running by a timed-out check must not overlap the next one on the same app.
        self._inspect_lock = threading.Lock()
        register_url_secret(broker_url, scrubber)

    async def run(self) -> dict[str, Any]:
        from redis.exceptions import RedisError

        try:
            pending, oldest_age = await self._read_queues()
        except (RedisError, OSError) as exc:
            return self.failed("broker unreachable: " + describe_error(exc, self._scrubber))
        try:
            consumers = await asyncio.to_thread(self._consumers)
        except Exception as exc:  # kombu raises its transport's errors and its own
            return {**self.failed("inspect failed: " + describe_error(exc, self._scrubber)), "pending_tasks": pending}
        return self._judge(pending, oldest_age, consumers)

    async def _read_queues(self) -> tuple[int, dict[str, float]]:
        names = [name for lists in self._lists.values() for name in lists]
        client = redis_client(self._broker_url)
        try:
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.llen(name)
                    pipe.lindex(name, -1)  # kombu LPUSHes and consumes from the right: -1 is the oldest
                replies = await pipe.execute()
        finally:
            await client.aclose()
        now = self._clock()
        lengths = dict(zip(names, replies[0::2], strict=False))
        ages = {name: self._age(name, head, now) for name, head in zip(names, replies[1::2], strict=False)}
        oldest = {}
        for queue, lists in self._lists.items():
            queue_ages = [age for name in lists if (age := ages[name]) is not None]
            if queue_ages:
                oldest[queue] = max(queue_ages)
        return sum(int(length) for length in lengths.values()), oldest

    def _age(self, list_name: str, head: bytes | None, now: float) -> float | None:
        if head is None:
            self._first_seen.pop(list_name, None)
            return None
        message = _parse_message(head)
        published = _published_at(message)
        if published is not None:
            return max(0.0, now - published)
        identity = _message_identity(head, message)
        seen = self._first_seen.get(list_name)
        if seen is None or seen[0] != identity:
            self._first_seen[list_name] = (identity, now)
            return 0.0
        return max(0.0, now - seen[1])

    def _consumers(self) -> dict[str, set[str]]:
        """{worker: names of the queues it consumes}; blocks for the whole inspect timeout."""
        # kombu's Redis transport blocks in BRPOP for its polling interval (1 s by default) and the inspect waits
        # for the BRPOP in flight: poll faster, or the inspect takes a second whatever its timeout.
        options = {"polling_interval": min(self._inspect_timeout / 10, 0.1)}
        with self._inspect_lock, self._app.connection_for_write(transport_options=options) as connection:
            inspector = self._app.control.inspect(timeout=self._inspect_timeout, connection=connection)
            replies = inspector.active_queues() or {}
        return {
            # A queue without a name matches no configured queue: it is left out.
            worker: {
                name for queue in queues or () if isinstance(queue, dict) and isinstance(name := queue.get("name"), str)
            }
            for worker, queues in replies.items()
        }

    def _judge(self, pending: int, oldest_age: dict[str, float], consumers: dict[str, set[str]]) -> dict[str, Any]:
        active = [worker for worker, queues in consumers.items() if queues & set(self._queues)]
        problems: list[str] = []
        status = HEALTHY
        if not consumers:
            status = UNHEALTHY
            problems.append(f"no worker answered within {self._inspect_timeout:g} s")
        else:
            idle = [queue for queue in self._queues if not any(queue in queues for queues in consumers.values())]
            if idle:
                status = UNHEALTHY
                problems.append(f"no worker consumes {', '.join(idle)}")
            for queue, age in oldest_age.items():
                if age > self._stall_seconds:
                    status = UNHEALTHY
                    problems.append(
                        f"queue {queue} stalled: oldest message waiting {age:.0f} s (over {self._stall_seconds:g} s)"
                    )
        if pending > self._critical_above:
            status = worst_status(status, self._critical_status)
            problems.append(f"{pending} pending tasks (critical over {self._critical_above})")
        elif pending > self._degraded_above:
            status = worst_status(status, DEGRADED)
            problems.append(f"{pending} pending tasks (over {self._degraded_above})")
        result: dict[str, Any] = {"status": status, "active_workers": len(active), "pending_tasks": pending}
        if problems:
            result["error"] = describe_error("; ".join(problems), self._scrubber)
        return result

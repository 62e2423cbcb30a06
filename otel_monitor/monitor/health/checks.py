"""One check per dependency of the backend (database, Redis, Celery, disk, FFmpeg), each returning the spec's shape.

Every check is an object with ``name`` and ``async def run() -> dict``; ``failed(error)`` gives its shape for a
check that got no answer (the service uses it when a check times out or crashes). A result that is not healthy
carries ``error``: short, scrubbed, never a URL's userinfo or a registered secret.

Degraded or unhealthy: ``unhealthy`` is kept for the spec's P0 conditions (notify immediately), ``degraded`` for
conditions the backend still serves through (P1 or a plain slowdown):

================  ==========================================================  ====================================
check             unhealthy (P0, error code)                                  degraded
================  ==========================================================  ====================================
database          connect or its query fails, or no answer in the timeout     answered slower than
                  (DATABASE_CONNECTION_FAILED)                                ``database_latency_degraded_ms``
redis             connect or ``PING`` fails, or no answer in the timeout      answered slower than
                  (REDIS_CONNECTION_FAILED)                                   ``redis_latency_degraded_ms``
celery            broker unreachable; no worker answers; a configured queue   pending > 50 (spec: warning); also
                  no answering worker consumes; a stalled queue: its oldest   > 100 (spec: critical) unless
                  message waited > ``celery_stall_seconds`` while workers     ``celery_queue_critical_status`` is
                  answer (CELERY_WORKER_DOWN)                                 "unhealthy"
disk              free < 10 % (DISK_SPACE_INSUFFICIENT)                       free < 20 %
ffmpeg            not found, not executable, exits non-zero or does not
                  print a version (FFMPEG_NOT_FOUND)
================  ==========================================================  ====================================

A long queue stays degraded by default: the spec lists it as P1, not P0, and answering 503 for a backlog would
make a load balancer or orchestrator take API instances out, which drains nothing. A stalled queue is different:
no work progresses at all, which is a worker down in all but name.

Celery: workers are counted with ``inspect active_queues`` (only workers consuming a configured queue count),
pending tasks with ``LLEN`` of the queue lists in the Redis broker (priority lists included), and a queue's age
from its oldest message (``LINDEX queue -1``): the ``otel_monitor_published_at`` header stamped at publish
(``publish_stamp.py``), else the time this check first saw that message at the head of the list (so un-stamped
messages are aged too, from the second check on).

Database: the check's one query reads the server's open connections too (``numbackends`` summed over
``pg_stat_database``, which any role may read, unlike other roles' rows of ``pg_stat_activity``; the check's own
connection included). It is kept on the check (``open_connections``) for the metrics, not put in the report, whose
shape is the spec's.

Disk: ``free_gb``/``total_gb`` in GiB (1024**3 bytes, as ``df -h``), ``percentage_used = 100 - free %`` with free
counted as the space available to unprivileged users, so "free < 10 %" and ``percentage_used > 90`` agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.instrument.publish_stamp import PUBLISHED_AT_HEADER
from otel_monitor.monitor.health.status import DEGRADED, HEALTHY, UNHEALTHY, worst_status
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = [
    "HealthCheck",
    "DatabaseCheck",
    "RedisCheck",
    "CeleryCheck",
    "DiskCheck",
    "FfmpegCheck",
    "BYTES_PER_GB",
    "checks_from_config",
    "describe_error",
    "disk_status",
    "parse_ffmpeg_version",
]

BYTES_PER_GB = 1024**3
# Checks do not time out themselves (the service's timeout does); this only bounds sockets left behind.
_BACKSTOP_SECONDS = 10
_MAX_ERROR_LENGTH = 200
# kombu's Redis transport: a queue's priority lists are "<queue>\x06\x16<priority>" (default steps 0, 3, 6, 9).
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)
_FFMPEG_VERSION = re.compile(r"^\s*ffmpeg version (\S+)", re.MULTILINE)


@runtime_checkable
class HealthCheck(Protocol):
    """What the service runs: ``name`` keys the result in the report."""

    name: str

    async def run(self) -> dict[str, Any]: ...


def describe_error(error: BaseException | str, scrubber: SecretScrubber = default_scrubber) -> str:
    """A short, one-line, scrubbed description of a failure: no URL userinfo, no registered secret."""
    if isinstance(error, BaseException):
        message = str(error).strip()
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    else:
        text = str(error)
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = scrubber.scrub_text(_USERINFO.sub(r"\g<scheme>", line))
    return line if len(line) <= _MAX_ERROR_LENGTH else line[: _MAX_ERROR_LENGTH - 3] + "..."


def _register_url_secret(url: str, scrubber: SecretScrubber) -> None:
    """So a password in the URL is scrubbed even where a library quotes it without the URL around it."""
    try:
        parts = urlsplit(url)
        passwords = [parts.password, *parse_qs(parts.query).get("password", ())]
    except ValueError:
        return
    for password in filter(None, passwords):
        scrubber.register(password)
        scrubber.register(unquote(password))


def _latency_result(latency_ms: float, degraded_above_ms: float) -> dict[str, Any]:
    result: dict[str, Any] = {"status": HEALTHY, "latency_ms": round(latency_ms, 2)}
    if latency_ms > degraded_above_ms:
        result["status"] = DEGRADED
        result["error"] = f"answered in {latency_ms:.0f} ms (over {degraded_above_ms:.0f} ms)"
    return result


class _Check:
    name: str
    error_code: SystemErrorCode
    _fields: tuple[str, ...]

    def failed(self, error: str) -> dict[str, Any]:
        """This check's shape with no measurement: unhealthy, with ``error``."""
        return {"status": UNHEALTHY, **dict.fromkeys(self._fields), "error": error}


def _libpq_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


class DatabaseCheck(_Check):
    """PostgreSQL answers a query on a new connection (psycopg 3, async); latency covers connect and query.

    The query counts the server's open connections: ``open_connections`` holds the count of the last run, None
    before the first and after a run that failed or was cut short.
    """

    name = "database"
    error_code = SystemErrorCode.DATABASE_CONNECTION_FAILED
    _fields = ("latency_ms",)
    # Backends connected to a database (clients, autovacuum workers), not the server's own background processes.
    _CONNECTIONS_QUERY = "SELECT coalesce(sum(numbackends), 0)::int FROM pg_stat_database"

    def __init__(self, url: str, *, latency_degraded_ms: float = 500.0,
                 scrubber: SecretScrubber = default_scrubber) -> None:
        import psycopg  # noqa: F401 - fail at construction, not at the first check

        self._conninfo = _libpq_url(url)
        self._latency_degraded_ms = latency_degraded_ms
        self._scrubber = scrubber
        self.open_connections: int | None = None
        _register_url_secret(url, scrubber)

    async def run(self) -> dict[str, Any]:
        import psycopg

        self.open_connections = None  # a run the service's timeout cancels must not leave the last count behind
        started = time.perf_counter()
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True,
                                                         connect_timeout=_BACKSTOP_SECONDS)
            try:
                row = await (await conn.execute(self._CONNECTIONS_QUERY)).fetchone()
            finally:
                await conn.close()
        except (psycopg.Error, OSError) as exc:
            return self.failed(describe_error(exc, self._scrubber))
        self.open_connections = row[0] if row else None
        return _latency_result((time.perf_counter() - started) * 1000, self._latency_degraded_ms)


def _redis_client(url: str):
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # No retries: a check reports what it sees now; the next check is the retry.
    return Redis.from_url(url, socket_connect_timeout=_BACKSTOP_SECONDS, socket_timeout=_BACKSTOP_SECONDS,
                          retry=Retry(NoBackoff(), 0))


class RedisCheck(_Check):
    """Redis answers ``PING`` on a new connection (redis.asyncio); latency covers connect and PING."""

    name = "redis"
    error_code = SystemErrorCode.REDIS_CONNECTION_FAILED
    _fields = ("latency_ms",)

    def __init__(self, url: str, *, latency_degraded_ms: float = 100.0,
                 scrubber: SecretScrubber = default_scrubber) -> None:
        self._url = url
        self._latency_degraded_ms = latency_degraded_ms
        self._scrubber = scrubber
        _register_url_secret(url, scrubber)

    async def run(self) -> dict[str, Any]:
        from redis.exceptions import RedisError

        started = time.perf_counter()
        client = _redis_client(self._url)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            return self.failed(describe_error(exc, self._scrubber))
        finally:
            await client.aclose()
        return _latency_result((time.perf_counter() - started) * 1000, self._latency_degraded_ms)


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


class CeleryCheck(_Check):
    """Workers consuming the configured queues (inspect active_queues), pending tasks and stalls (the Redis broker)."""

    name = "celery"
    error_code = SystemErrorCode.CELERY_WORKER_DOWN
    _fields = ("active_workers", "pending_tasks")

    def __init__(self, broker_url: str, *, queues: Sequence[str] = ("celery",), inspect_timeout: float = 0.5,
                 degraded_above: int = 50, critical_above: int = 100, critical_status: str = DEGRADED,
                 stall_seconds: float = 900.0, clock: Callable[[], float] = time.time, app: Any = None,
                 scrubber: SecretScrubber = default_scrubber) -> None:
        from celery import Celery

        self._broker_url = broker_url
        self._queues = tuple(queues)
        self._lists = {queue: (queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS))
                       for queue in self._queues}
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
        _register_url_secret(broker_url, scrubber)

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
        client = _redis_client(self._broker_url)
        try:
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.llen(name)
                    pipe.lindex(name, -1)  # kombu LPUSHes and consumes from the right: -1 is the oldest
                replies = await pipe.execute()
        finally:
            await client.aclose()
        now = self._clock()
        lengths = dict(zip(names, replies[0::2]))
        ages = {name: self._age(name, head, now) for name, head in zip(names, replies[1::2])}
        oldest = {}
        for queue, lists in self._lists.items():
            queue_ages = [ages[name] for name in lists if ages[name] is not None]
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
        return {worker: {queue.get("name") for queue in queues or () if isinstance(queue, dict)}
                for worker, queues in replies.items()}

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
                    problems.append(f"queue {queue} stalled: oldest message waiting {age:.0f} s "
                                    f"(over {self._stall_seconds:g} s)")
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


def disk_status(free_percent: float, degraded_below: float = 20.0, unhealthy_below: float = 10.0) -> str:
    """Unhealthy below ``unhealthy_below`` % free, degraded below ``degraded_below`` %, else healthy."""
    if free_percent < unhealthy_below:
        return UNHEALTHY
    if free_percent < degraded_below:
        return DEGRADED
    return HEALTHY


def _psutil_disk_usage(path: str):
    import psutil

    return psutil.disk_usage(path)


class DiskCheck(_Check):
    """Free space on ``path``, read by ``usage_reader`` (psutil.disk_usage: anything with ``total`` and ``free``)."""

    name = "disk"
    error_code = SystemErrorCode.DISK_SPACE_INSUFFICIENT
    _fields = ("free_gb", "total_gb", "percentage_used")

    def __init__(self, path: str = "/", *, degraded_below_percent: float = 20.0,
                 unhealthy_below_percent: float = 10.0, usage_reader: Callable[[str], Any] = _psutil_disk_usage,
                 scrubber: SecretScrubber = default_scrubber) -> None:
        self._path = path
        self._degraded_below = degraded_below_percent
        self._unhealthy_below = unhealthy_below_percent
        self._read_usage = usage_reader
        self._scrubber = scrubber

    async def run(self) -> dict[str, Any]:
        try:
            usage = await asyncio.to_thread(self._read_usage, self._path)  # statvfs can hang on a network mount
        except OSError as exc:
            return self.failed(describe_error(exc, self._scrubber))
        total, free = int(usage.total), int(usage.free)
        if total <= 0:
            return self.failed(f"{self._path} reports no capacity")
        free_percent = free / total * 100
        result: dict[str, Any] = {
            "status": disk_status(free_percent, self._degraded_below, self._unhealthy_below),
            "free_gb": round(free / BYTES_PER_GB, 2),
            "total_gb": round(total / BYTES_PER_GB, 2),
            "percentage_used": round(100 - free_percent, 1),
        }
        if result["status"] != HEALTHY:
            limit = self._unhealthy_below if result["status"] == UNHEALTHY else self._degraded_below
            result["error"] = f"{free_percent:.1f} % free on {self._path} (below {limit:g} %)"
        return result


def parse_ffmpeg_version(output: str) -> str | None:
    """What ffmpeg prints after "ffmpeg version " ("5.1.6-0+deb12u1"), or None if it is not ffmpeg's banner."""
    match = _FFMPEG_VERSION.search(output)
    return match.group(1) if match else None


class FfmpegCheck(_Check):
    """``<binary> -version`` runs (async subprocess) and prints ffmpeg's version."""

    name = "ffmpeg"
    error_code = SystemErrorCode.FFMPEG_NOT_FOUND
    _fields = ("version",)

    def __init__(self, binary: str = "ffmpeg", *, scrubber: SecretScrubber = default_scrubber) -> None:
        self._binary = binary
        self._scrubber = scrubber

    async def run(self) -> dict[str, Any]:
        try:
            process = await asyncio.create_subprocess_exec(
                self._binary, "-version", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
        except FileNotFoundError:
            return self.failed(f"{self._binary} not found")
        except OSError as exc:
            return self.failed(describe_error(exc, self._scrubber))
        try:
            output, _ = await process.communicate()
        finally:
            if process.returncode is None:  # cancelled by the service's timeout: leave no process behind
                process.kill()
        if process.returncode != 0:
            return self.failed(f"{self._binary} -version exited with {process.returncode}")
        version = parse_ffmpeg_version(output.decode(errors="replace"))
        if version is None:
            return self.failed(f"{self._binary} -version printed no ffmpeg version")
        return {"status": HEALTHY, "version": version}


def checks_from_config(config: HealthConfig, *, clock: Callable[[], float] = time.time,
                       scrubber: SecretScrubber = default_scrubber,
                       disk_usage_reader: Callable[[str], Any] | None = None) -> list[HealthCheck]:
    """The checks a config asks for, in report order; a dependency whose URL is None is not checked."""
    checks: list[HealthCheck] = []
    if config.database_url is not None:
        checks.append(DatabaseCheck(config.database_url, latency_degraded_ms=config.database_latency_degraded_ms,
                                    scrubber=scrubber))
    if config.redis_url is not None:
        checks.append(RedisCheck(config.redis_url, latency_degraded_ms=config.redis_latency_degraded_ms,
                                 scrubber=scrubber))
    if config.celery_broker_url is not None:
        checks.append(CeleryCheck(
            config.celery_broker_url, queues=config.celery_queues,
            inspect_timeout=config.celery_inspect_timeout_seconds,
            degraded_above=config.celery_queue_degraded_above, critical_above=config.celery_queue_critical_above,
            critical_status=config.celery_queue_critical_status, stall_seconds=config.celery_stall_seconds,
            clock=clock, scrubber=scrubber))
    checks.append(DiskCheck(config.disk_path, degraded_below_percent=config.disk_free_degraded_below_percent,
                            unhealthy_below_percent=config.disk_free_unhealthy_below_percent,
                            usage_reader=disk_usage_reader or _psutil_disk_usage, scrubber=scrubber))
    checks.append(FfmpegCheck(config.ffmpeg_binary, scrubber=scrubber))
    return checks

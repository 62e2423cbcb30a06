"""One check per dependency of the backend (database, Redis, Celery, disk, FFmpeg), one module each.

Every check is an object with ``name`` and ``async def run() -> dict``: the check's entry in the health report
(``status``, its measurements, ``error``); ``failed(error)`` gives its shape for a check that got no answer (the
service uses it when a check times out or crashes). A result that is not healthy carries ``error``: short,
scrubbed, never a URL's userinfo or a registered secret.

Degraded or unhealthy: ``unhealthy`` is kept for the P0 conditions (notify at once, docs/requirements.md, P0),
``degraded`` for conditions the backend still serves through (P1 or a plain slowdown):

================  ==========================================================  ====================================
check             unhealthy (P0, error code)                                  degraded
================  ==========================================================  ====================================
database          connect or its query fails, or no answer in the timeout     answered slower than
                  (DATABASE_CONNECTION_FAILED)                                ``database_latency_degraded_ms``
redis             connect or ``PING`` fails, or no answer in the timeout      answered slower than
                  (REDIS_CONNECTION_FAILED)                                   ``redis_latency_degraded_ms``
celery            broker unreachable; no worker answers; a configured queue   pending > 50 (warning level); also
                  no answering worker consumes; a stalled queue: its oldest   > 100 (critical level) unless
                  message waited > ``celery_stall_seconds`` while workers     ``celery_queue_critical_status`` is
                  answer (CELERY_WORKER_DOWN)                                 "unhealthy"
disk              free < 10 % (DISK_SPACE_INSUFFICIENT)                       free < 20 %
ffmpeg            not found, not executable, exits non-zero or does not
                  print a version (FFMPEG_NOT_FOUND)
================  ==========================================================  ====================================

A long queue stays degraded by default: a queue over 50 is a P1 condition, not P0, and answering 503 for a
backlog would make a load balancer or orchestrator take API instances out, which drains nothing. A stalled queue
is different: no work progresses at all, which is a worker down in all but name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from otel_monitor.monitor.health.checks.base import BaseCheck, HealthCheck, describe_error
from otel_monitor.monitor.health.checks.celery import CeleryCheck
from otel_monitor.monitor.health.checks.database import DatabaseCheck
from otel_monitor.monitor.health.checks.disk import BYTES_PER_GB, DiskCheck, disk_status
from otel_monitor.monitor.health.checks.ffmpeg import FfmpegCheck, parse_ffmpeg_version
from otel_monitor.monitor.health.checks.redis import RedisCheck
from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = [
    "HealthCheck",
    "BaseCheck",
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


def checks_from_config(
    config: HealthConfig,
    *,
    clock: Callable[[], float] = time.time,
    scrubber: SecretScrubber = default_scrubber,
    disk_usage_reader: Callable[[str], Any] | None = None,
) -> list[HealthCheck]:
    """The checks a config asks for, in report order; a dependency whose URL is None is not checked."""
    checks: list[HealthCheck] = []
    if config.database_url is not None:
        checks.append(
            DatabaseCheck(
                config.database_url, latency_degraded_ms=config.database_latency_degraded_ms, scrubber=scrubber
            )
        )
    if config.redis_url is not None:
        checks.append(
            RedisCheck(config.redis_url, latency_degraded_ms=config.redis_latency_degraded_ms, scrubber=scrubber)
        )
    if config.celery_broker_url is not None:
        checks.append(
            CeleryCheck(
                config.celery_broker_url,
                queues=config.celery_queues,
                inspect_timeout=config.celery_inspect_timeout_seconds,
                degraded_above=config.celery_queue_degraded_above,
                critical_above=config.celery_queue_critical_above,
                critical_status=config.celery_queue_critical_status,
                stall_seconds=config.celery_stall_seconds,
                clock=clock,
                scrubber=scrubber,
            )
        )
    checks.append(
        DiskCheck(
            config.disk_path,
            degraded_below_percent=config.disk_free_degraded_below_percent,
            unhealthy_below_percent=config.disk_free_unhealthy_below_percent,
            usage_reader=disk_usage_reader,
            scrubber=scrubber,
        )
    )
    checks.append(FfmpegCheck(config.ffmpeg_binary, scrubber=scrubber))
    return checks

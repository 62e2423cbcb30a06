"""Health of the backend's dependencies (database, Redis, Celery, disk, FFmpeg): checks, report, metrics, endpoints."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported on first use, so a Celery producer importing ``publish_stamp`` does not load FastAPI and the drivers.
_EXPORTS = {
    "HealthConfig": "config",
    "HealthService": "service",
    "build_health_router": "router",
    "HealthCheck": "checks",
    "DatabaseCheck": "checks",
    "RedisCheck": "checks",
    "CeleryCheck": "checks",
    "DiskCheck": "checks",
    "FfmpegCheck": "checks",
    "checks_from_config": "checks",
    "HEALTHY": "status",
    "DEGRADED": "status",
    "UNHEALTHY": "status",
    "aggregate_status": "status",
    "render_health_json": "status",
    "HealthMetricNames": "metrics",
    "HealthPromNames": "metrics",
    "PUBLISHED_AT_HEADER": "publish_stamp",
    "stamp_published_at": "publish_stamp",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from otel_monitor.health.checks import (CeleryCheck, DatabaseCheck, DiskCheck, FfmpegCheck, HealthCheck,
                                            RedisCheck, checks_from_config)
    from otel_monitor.health.config import HealthConfig
    from otel_monitor.health.metrics import HealthMetricNames, HealthPromNames
    from otel_monitor.health.publish_stamp import PUBLISHED_AT_HEADER, stamp_published_at
    from otel_monitor.health.router import build_health_router
    from otel_monitor.health.service import HealthService
    from otel_monitor.health.status import DEGRADED, HEALTHY, UNHEALTHY, aggregate_status, render_health_json


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)

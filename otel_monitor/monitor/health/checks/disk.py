"""The disk check: free space on the file system of a path, degraded below 20 % free and unhealthy below 10 %.

``free_gb``/``total_gb`` are in GiB (1024**3 bytes, as ``df -h``), ``percentage_used = 100 - free %`` with free
counted as the space available to unprivileged users, so "free < 10 %" and ``percentage_used > 90`` agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.monitor.health.checks.base import BaseCheck, describe_error
from otel_monitor.monitor.health.status import DEGRADED, HEALTHY, UNHEALTHY
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["DiskCheck", "BYTES_PER_GB", "disk_status"]

BYTES_PER_GB = 1024**3


class _DiskUsage(Protocol):
    """What the check reads of a usage reader's answer (psutil's ``sdiskusage`` has it), in bytes."""

    @property
    def total(self) -> float: ...

    @property
    def free(self) -> float: ...


def disk_status(free_percent: float, degraded_below: float = 20.0, unhealthy_below: float = 10.0) -> str:
    """Unhealthy below ``unhealthy_below`` % free, degraded below ``degraded_below`` %, else healthy."""
    if free_percent < unhealthy_below:
        return UNHEALTHY
    if free_percent < degraded_below:
        return DEGRADED
    return HEALTHY


def _psutil_disk_usage(path: str) -> _DiskUsage:
    import psutil

    return psutil.disk_usage(path)


class DiskCheck(BaseCheck):
    """Free space on ``path``, read by ``usage_reader`` (anything with ``total`` and ``free``; None:
    psutil.disk_usage)."""

    name = "disk"
    error_code = SystemErrorCode.DISK_SPACE_INSUFFICIENT
    _fields = ("free_gb", "total_gb", "percentage_used")

    def __init__(
        self,
        path: str = "/",
        *,
        degraded_below_percent: float = 20.0,
        unhealthy_below_percent: float = 10.0,
        usage_reader: Callable[[str], _DiskUsage] | None = None,
        scrubber: SecretScrubber = default_scrubber,
    ) -> None:
        self._path = path
        self._degraded_below = degraded_below_percent
        self._unhealthy_below = unhealthy_below_percent
        self._read_usage = usage_reader or _psutil_disk_usage
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

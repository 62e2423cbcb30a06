"""Health check results and the host's load as OpenTelemetry gauges: the one definition site of their names.

Instrument (unit) -> Prometheus series from the collector's exporter; ``check`` label on the first three:

- ``otel_monitor.health.check.up`` ({up}) -> ``otel_monitor_health_check_up``: 1 unless the check is unhealthy
- ``otel_monitor.health.check.status`` ({status}) -> ``otel_monitor_health_check_status``: 0 healthy,
  1 degraded, 2 unhealthy
- ``otel_monitor.health.check.latency`` (s) -> ``otel_monitor_health_check_latency_seconds`` (database, redis)
- ``otel_monitor.health.disk.free`` (By) -> ``otel_monitor_health_disk_free_bytes``
- ``otel_monitor.health.disk.total`` (By) -> ``otel_monitor_health_disk_total_bytes``
- ``otel_monitor.health.disk.free_ratio`` (1) -> ``otel_monitor_health_disk_free_ratio`` (0..1)
- ``otel_monitor.health.celery.queue.length`` ({task}) -> ``otel_monitor_health_celery_queue_length``
- ``otel_monitor.health.celery.workers`` ({worker}) -> ``otel_monitor_health_celery_workers``
- ``otel_monitor.health.database.connections`` ({connection}) -> ``otel_monitor_health_database_connections``
- ``otel_monitor.health.cpu.usage_ratio`` (1) -> ``otel_monitor_health_cpu_usage_ratio`` (0..1)
- ``otel_monitor.health.memory.usage_ratio`` (1) -> ``otel_monitor_health_memory_usage_ratio`` (0..1)

The overall status is ``check="overall"`` on the up and status gauges. Bytes come from the report's GiB values
(two decimals, so within 10 MiB). A check that is not in the report, or a value that is null, is not observed.

Database connections are the monitored PostgreSQL server's open connections as the database check last counted
them (``DatabaseCheck.open_connections``); no database check, or its last run failed: not observed.

CPU and memory are the host the monitor runs on, read by psutil at each collection, not from the report (which is
up to ``cache_ttl_seconds`` old): an operator reading "CPU above 90% for 5 minutes" expects the current load.
CPU is the busy share of all CPUs since the previous collection, that is the average over one export interval
(``psutil.cpu_percent(interval=None)``, non-blocking; psutil keeps one baseline per thread, so the first collection
on a thread observes nothing rather than a meaningless 0). Memory is the share not available to new processes
(``virtual_memory().percent``: page cache that can be reclaimed counts as available, as ``free -m`` shows it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_monitor.instrument.host_metrics import (
    memory_usage_ratio,  # one reading of memory for the monitor and the backend
)
from otel_monitor.instrument.metrics import METER_NAME
from otel_monitor.monitor.health.checks.disk import BYTES_PER_GB
from otel_monitor.monitor.health.status import STATUSES, UNHEALTHY

__all__ = ["HealthMetricNames", "HealthPromNames", "HealthMetrics", "CpuUsageReader", "memory_usage_ratio", "OVERALL"]

# The ``check`` label value of the overall status.
OVERALL = "overall"

Report = Mapping[str, Any]


class HealthMetricNames:
    """Instrument names."""

    UP = "otel_monitor.health.check.up"
    STATUS = "otel_monitor.health.check.status"
    LATENCY = "otel_monitor.health.check.latency"
    DISK_FREE = "otel_monitor.health.disk.free"
    DISK_TOTAL = "otel_monitor.health.disk.total"
    DISK_FREE_RATIO = "otel_monitor.health.disk.free_ratio"
    CELERY_QUEUE_LENGTH = "otel_monitor.health.celery.queue.length"
    CELERY_WORKERS = "otel_monitor.health.celery.workers"
    DATABASE_CONNECTIONS = "otel_monitor.health.database.connections"
    CPU_USAGE_RATIO = "otel_monitor.health.cpu.usage_ratio"
    MEMORY_USAGE_RATIO = "otel_monitor.health.memory.usage_ratio"


class HealthPromNames:
    """The series names the collector's Prometheus exporter gives these instruments (unit suffixes added)."""

    UP = "otel_monitor_health_check_up"
    STATUS = "otel_monitor_health_check_status"
    LATENCY = "otel_monitor_health_check_latency_seconds"
    DISK_FREE = "otel_monitor_health_disk_free_bytes"
    DISK_TOTAL = "otel_monitor_health_disk_total_bytes"
    DISK_FREE_RATIO = "otel_monitor_health_disk_free_ratio"
    CELERY_QUEUE_LENGTH = "otel_monitor_health_celery_queue_length"
    CELERY_WORKERS = "otel_monitor_health_celery_workers"
    DATABASE_CONNECTIONS = "otel_monitor_health_database_connections"
    CPU_USAGE_RATIO = "otel_monitor_health_cpu_usage_ratio"
    MEMORY_USAGE_RATIO = "otel_monitor_health_memory_usage_ratio"


def _status_value(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else STATUSES.index(UNHEALTHY)


class CpuUsageReader:
    """The host's CPU busy share (0..1) since the previous read on the same thread; None on a thread's first read."""

    def __init__(self) -> None:
        self._threads: set[int] = set()

    def __call__(self) -> float | None:
        import psutil

        thread = threading.get_ident()
        first = thread not in self._threads
        self._threads.add(thread)
        percent = psutil.cpu_percent(interval=None)  # also sets this thread's baseline for the next read
        return None if first else round(percent / 100, 4)


def _no_count() -> int | None:
    return None


class HealthMetrics:
    """Registers the gauges on ``meter_provider``; each collection reads ``last_report()`` (None: nothing yet),
    ``open_connections()`` (the database check's last count, None: not observed) and the host's CPU and memory
    through ``cpu_usage`` and ``memory_usage`` (ratios, None: not observed)."""

    def __init__(
        self,
        meter_provider: MeterProvider,
        last_report: Callable[[], Report | None],
        *,
        open_connections: Callable[[], int | None] = _no_count,
        cpu_usage: Callable[[], float | None] | None = None,
        memory_usage: Callable[[], float | None] = memory_usage_ratio,
    ) -> None:
        self._last_report = last_report
        meter = meter_provider.get_meter(METER_NAME)
        gauges: tuple[tuple[str, Callable[[Report], Iterable[Observation]], str, str], ...] = (
            (HealthMetricNames.UP, self._up, "{up}", "1 when a dependency check is not unhealthy, else 0"),
            (
                HealthMetricNames.STATUS,
                self._status,
                "{status}",
                "Dependency check status: 0 healthy, 1 degraded, 2 unhealthy",
            ),
            (HealthMetricNames.LATENCY, self._latency, "s", "Time a dependency took to answer its health check"),
            (HealthMetricNames.DISK_FREE, self._disk_free, "By", "Disk space available to the backend"),
            (HealthMetricNames.DISK_TOTAL, self._disk_total, "By", "Disk capacity"),
            (HealthMetricNames.DISK_FREE_RATIO, self._disk_free_ratio, "1", "Share of the disk available"),
            (
                HealthMetricNames.CELERY_QUEUE_LENGTH,
                self._queue_length,
                "{task}",
                "Tasks waiting in the Celery broker's queues",
            ),
            (
                HealthMetricNames.CELERY_WORKERS,
                self._workers,
                "{worker}",
                "Celery workers consuming the monitored queues",
            ),
        )
        for name, observe, unit, description in gauges:
            meter.create_observable_gauge(name, [self._callback(observe)], unit=unit, description=description)
        live: tuple[tuple[str, Callable[[], float | None], str, str], ...] = (
            (
                HealthMetricNames.DATABASE_CONNECTIONS,
                open_connections,
                "{connection}",
                "Open connections on the monitored PostgreSQL server, as the database check last counted them",
            ),
            (
                HealthMetricNames.CPU_USAGE_RATIO,
                cpu_usage or CpuUsageReader(),
                "1",
                "Busy share of the monitor host's CPUs since the previous collection",
            ),
            (
                HealthMetricNames.MEMORY_USAGE_RATIO,
                memory_usage,
                "1",
                "Share of the monitor host's memory not available to new processes",
            ),
        )
        for name, read, unit, description in live:
            meter.create_observable_gauge(name, [self._live_callback(read)], unit=unit, description=description)

    def _callback(
        self, observe: Callable[[Report], Iterable[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            report = self._last_report()
            return list(observe(report)) if report else []

        return callback

    @staticmethod
    def _live_callback(read: Callable[[], float | None]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            value = read()
            return [] if value is None else [Observation(value)]

        return callback

    @staticmethod
    def _up(report: Report) -> Iterable[Observation]:
        yield Observation(int(report["status"] != UNHEALTHY), {"check": OVERALL})
        for name, result in report["checks"].items():
            yield Observation(int(result.get("status") != UNHEALTHY), {"check": name})

    @staticmethod
    def _status(report: Report) -> Iterable[Observation]:
        yield Observation(_status_value(report["status"]), {"check": OVERALL})
        for name, result in report["checks"].items():
            yield Observation(_status_value(result.get("status")), {"check": name})

    @staticmethod
    def _latency(report: Report) -> Iterable[Observation]:
        for name, result in report["checks"].items():
            if result.get("latency_ms") is not None:
                yield Observation(result["latency_ms"] / 1000, {"check": name})

    @staticmethod
    def _field(report: Report, check: str, field: str) -> Any:
        return (report["checks"].get(check) or {}).get(field)

    def _disk_free(self, report: Report) -> Iterable[Observation]:
        free = self._field(report, "disk", "free_gb")
        if free is not None:
            yield Observation(int(free * BYTES_PER_GB))

    def _disk_total(self, report: Report) -> Iterable[Observation]:
        total = self._field(report, "disk", "total_gb")
        if total is not None:
            yield Observation(int(total * BYTES_PER_GB))

    def _disk_free_ratio(self, report: Report) -> Iterable[Observation]:
        used = self._field(report, "disk", "percentage_used")
        if used is not None:
            yield Observation(round(1 - used / 100, 4))

    def _queue_length(self, report: Report) -> Iterable[Observation]:
        pending = self._field(report, "celery", "pending_tasks")
        if pending is not None:
            yield Observation(pending)

    def _workers(self, report: Report) -> Iterable[Observation]:
        workers = self._field(report, "celery", "active_workers")
        if workers is not None:
            yield Observation(workers)

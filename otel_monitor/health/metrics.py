"""Health check results as OpenTelemetry gauges, read from the last report: the one definition site of their names.

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

The overall status is ``check="overall"`` on the up and status gauges. Bytes come from the report's GiB values
(two decimals, so within 10 MiB). A check that is not in the report, or a value that is null, is not observed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_monitor.health.checks import BYTES_PER_GB
from otel_monitor.health.status import STATUSES, UNHEALTHY
from otel_monitor.instruments import METER_NAME

__all__ = ["HealthMetricNames", "HealthPromNames", "HealthMetrics", "OVERALL"]

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


def _status_value(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else STATUSES.index(UNHEALTHY)


class HealthMetrics:
    """Registers the gauges on ``meter_provider``; each collection reads ``last_report()`` (None: nothing yet)."""

    def __init__(self, meter_provider: MeterProvider, last_report: Callable[[], Report | None]) -> None:
        self._last_report = last_report
        meter = meter_provider.get_meter(METER_NAME)
        gauges: tuple[tuple[str, Callable[[Report], Iterable[Observation]], str, str], ...] = (
            (HealthMetricNames.UP, self._up, "{up}", "1 when a dependency check is not unhealthy, else 0"),
            (HealthMetricNames.STATUS, self._status, "{status}",
             "Dependency check status: 0 healthy, 1 degraded, 2 unhealthy"),
            (HealthMetricNames.LATENCY, self._latency, "s", "Time a dependency took to answer its health check"),
            (HealthMetricNames.DISK_FREE, self._disk_free, "By", "Disk space available to the backend"),
            (HealthMetricNames.DISK_TOTAL, self._disk_total, "By", "Disk capacity"),
            (HealthMetricNames.DISK_FREE_RATIO, self._disk_free_ratio, "1", "Share of the disk available"),
            (HealthMetricNames.CELERY_QUEUE_LENGTH, self._queue_length, "{task}",
             "Tasks waiting in the Celery broker's queues"),
            (HealthMetricNames.CELERY_WORKERS, self._workers, "{worker}",
             "Celery workers consuming the monitored queues"),
        )
        for name, observe, unit, description in gauges:
            meter.create_observable_gauge(name, [self._callback(observe)], unit=unit, description=description)

    def _callback(self, observe: Callable[[Report], Iterable[Observation]]):
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            report = self._last_report()
            return list(observe(report)) if report else []
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

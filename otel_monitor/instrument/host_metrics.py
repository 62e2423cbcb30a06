"""CPU, memory and disk of the host a backend process runs on, labelled by host, and the PromQL that reads them.

Every instrumented process (the API, each Celery child) exports the same three gauges through psutil, read at each
metric export (see ``observe_host_usage`` in instruments.py for the instrument names):

- ``host_cpu_usage_ratio{host}``: busy share of all CPUs since the previous export (a delta of ``cpu_times()``
  kept by this module, so it never blocks and never shares psutil's ``cpu_percent`` baseline with anyone);
- ``host_memory_usage_ratio{host}``: share of memory not available to new processes (``virtual_memory()``;
  reclaimable page cache counts as available, as ``free -m`` shows it);
- ``host_disk_free_ratio{host, path}``: space available to unprivileged users over capacity, as the monitor's disk
  check counts it, for each file system (``path`` = its mount point) holding a configured path.

Why not the upstream ``opentelemetry-instrumentation-system-metrics``: it has no file-system usage (a TODO
upstream), reports CPU per core and state and memory per state (a rule would rebuild the busy share), and its
only way to name the host is a resource attribute, which Prometheus sees on ``target_info``, not on the series.

Several processes of one host export identical values, so queries aggregate by host (the constants below: rules,
the system dashboard and the daily summary's per-host peaks use them).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_monitor.instrument.metrics import METER_NAME, HostLabel, PromNames, observe_host_usage

if TYPE_CHECKING:
    from otel_monitor.instrument.settings import TelemetrySettings

__all__ = [
    "HOST_CPU",
    "HOST_MEMORY",
    "HOST_DISK_FREE",
    "HOST_CPU_PEAK",
    "HOST_MEMORY_PEAK",
    "HOST_DISK_FREE_LOWEST",
    "HostMetrics",
    "export_host_metrics",
    "CpuUsage",
    "memory_usage_ratio",
    "disk_free_ratio",
    "mount_points",
    "default_disk_paths",
]

_log = logging.getLogger(__name__)

# Current value per host (per host and file system for disk): what the system rules compare and panels draw.
HOST_CPU = f"max by ({HostLabel.HOST}) ({PromNames.HOST_CPU_USAGE})"
HOST_MEMORY = f"max by ({HostLabel.HOST}) ({PromNames.HOST_MEMORY_USAGE})"
# The least free any process saw: identical values anyway, and the safe side if two disagree.
HOST_DISK_FREE = f"min by ({HostLabel.HOST}, {HostLabel.PATH}) ({PromNames.HOST_DISK_FREE})"
# Peaks over a window, for the daily summary's system section: ``.format(window="1d", selector="")``, or with
# matchers, e.g. ``selector='{job=~"video-.*"}'``.
HOST_CPU_PEAK = f"max by ({HostLabel.HOST}) (max_over_time({PromNames.HOST_CPU_USAGE}{{selector}}[{{window}}]))"
HOST_MEMORY_PEAK = f"max by ({HostLabel.HOST}) (max_over_time({PromNames.HOST_MEMORY_USAGE}{{selector}}[{{window}}]))"
HOST_DISK_FREE_LOWEST = (
    f"min by ({HostLabel.HOST}, {HostLabel.PATH}) (min_over_time({PromNames.HOST_DISK_FREE}{{selector}}[{{window}}]))"
)


def _busy_and_total(times: Any) -> tuple[float, float]:
    """(busy, total) seconds of a ``psutil.cpu_times()`` reading, counted as ``psutil.cpu_percent`` counts them:
    guest time is already in user time, and I/O wait is idle."""
    fields = times._asdict()
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


class CpuUsage:
    """The host's CPU busy share (0..1) since the previous read; the first read counts from construction.
    None when no time has passed between two reads."""

    def __init__(self, read_times: Callable[[], Any] | None = None) -> None:
        if read_times is None:
            import psutil

            read_times = psutil.cpu_times
        self._read_times = read_times
        self._lock = threading.Lock()
        self._last = _busy_and_total(read_times())

    def __call__(self) -> float | None:
        busy, total = _busy_and_total(self._read_times())
        with self._lock:
            (last_busy, last_total), self._last = self._last, (busy, total)
        elapsed = total - last_total
        if elapsed <= 0:
            return None
        return round(min(max((busy - last_busy) / elapsed, 0.0), 1.0), 4)


def memory_usage_ratio() -> float:
    """The share of the host's memory not available to new processes (0..1)."""
    import psutil

    return round(psutil.virtual_memory().percent / 100, 4)


def disk_free_ratio(path: str) -> float | None:
    """Space on ``path``'s file system available to unprivileged users over its capacity (0..1); None: no capacity."""
    import psutil

    usage = psutil.disk_usage(path)
    return round(usage.free / usage.total, 4) if usage.total > 0 else None


def _mount_point(path: str) -> str:
    current = os.path.realpath(os.path.abspath(path))
    while not os.path.ismount(current):  # a path not created yet resolves through its nearest existing parent
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def mount_points(paths: Iterable[str]) -> list[str]:
    """The mount points of the file systems holding ``paths``, each once, in the order first met."""
    return list(dict.fromkeys(_mount_point(path) for path in paths))


def default_disk_paths(log_dir: str) -> list[str]:
    """The paths whose file systems are watched unless configured: the log dir's and the current directory's."""
    return [log_dir, os.getcwd()]


class HostMetrics:
    """Registers the host gauges on ``meter_provider``, labelled ``host=host_name`` and, for disk, by mount point.

    Readers are injectable (tests); a reader that fails is logged at debug and its value not observed, so a bad
    path or a psutil error never reaches the export thread, let alone the host's code.
    """

    def __init__(
        self,
        meter_provider: MeterProvider,
        host_name: str,
        disk_paths: Iterable[str],
        *,
        cpu_usage: Callable[[], float | None] | None = None,
        memory_usage: Callable[[], float | None] = memory_usage_ratio,
        disk_free: Callable[[str], float | None] = disk_free_ratio,
    ) -> None:
        self.host_name = host_name
        self.mount_points = mount_points(disk_paths)
        self._cpu_usage = cpu_usage or CpuUsage()
        self._memory_usage = memory_usage
        self._disk_free = disk_free
        self.gauges = observe_host_usage(
            meter_provider.get_meter(METER_NAME),
            cpu=self._observe_cpu,
            memory=self._observe_memory,
            disk_free=self._observe_disk,
        )

    def _labels(self, **extra: str) -> dict[str, str]:
        return {HostLabel.HOST: self.host_name, **extra}

    @staticmethod
    def _read(what: str, read: Callable[[], float | None]) -> float | None:
        try:
            return read()
        except Exception:  # psutil on an odd platform, a path gone: no value this time, nothing raised
            _log.debug("reading the host's %s failed", what, exc_info=True)
            return None

    def _observe_cpu(self, _options: CallbackOptions) -> list[Observation]:
        value = self._read("CPU", self._cpu_usage)
        return [] if value is None else [Observation(value, self._labels())]

    def _observe_memory(self, _options: CallbackOptions) -> list[Observation]:
        value = self._read("memory", self._memory_usage)
        return [] if value is None else [Observation(value, self._labels())]

    def _observe_disk(self, _options: CallbackOptions) -> list[Observation]:
        observations = []
        for mount in self.mount_points:
            value = self._read(f"disk {mount}", functools.partial(self._disk_free, mount))
            if value is not None:
                observations.append(Observation(value, self._labels(**{HostLabel.PATH: mount})))
        return observations


def export_host_metrics(settings: TelemetrySettings, meter_provider: MeterProvider) -> HostMetrics | None:
    """The host gauges of a backend process, from its settings: ``host_name`` (default: this machine's hostname)
    and ``disk_paths`` (default: the log dir's and the current directory's file systems). None when switched off
    (``host_metrics=false``) or when set-up failed (logged: telemetry set-up never fails the host)."""
    if not settings.host_metrics:
        return None
    try:
        return HostMetrics(
            meter_provider,
            settings.host_name or socket.gethostname(),
            settings.disk_paths or default_disk_paths(settings.log_dir),
        )
    except Exception:
        _log.warning("host metrics not exported: reading the host failed", exc_info=True)
        return None

"""CPU, memory and disk of every backend host, labelled by host: the gauges, their settings, the rules and
dashboard built on them, and two real processes reaching Prometheus through the real collector as two hosts."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections import namedtuple

import pytest
from pydantic import ValidationError

from otel_monitor.instrument.host_metrics import (
    HOST_CPU,
    HOST_CPU_PEAK,
    HOST_DISK_FREE,
    HOST_DISK_FREE_LOWEST,
    HOST_MEMORY,
    HOST_MEMORY_PEAK,
    CpuUsage,
    HostMetrics,
    export_host_metrics,
    mount_points,
)
from otel_monitor.instrument.metrics import HostLabel, PromNames
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.testing import CapturedTelemetry, capture_telemetry, in_memory_telemetry
from tests.support.backends import prom_values
from tools.devstack import wait_until
from tools.devstack.stack import REPO_ROOT

RULES_FILE = REPO_ROOT / "config" / "alert-rules.yaml"
SYSTEM_DASHBOARD = REPO_ROOT / "dashboards" / "system.json"
CPU = "host.cpu.usage_ratio"
MEMORY = "host.memory.usage_ratio"
DISK = "host.disk.free_ratio"

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


def _times(busy: float, idle: float, iowait: float = 0.0, guest: float = 0.0) -> CpuTimes:
    # guest time is already counted in user time, as Linux reports it
    return CpuTimes(
        user=busy,
        nice=0.0,
        system=0.0,
        idle=idle,
        iowait=iowait,
        irq=0.0,
        softirq=0.0,
        steal=0.0,
        guest=guest,
        guest_nice=0.0,
    )


def _points(captured: CapturedTelemetry) -> dict[tuple[str, tuple], float]:
    """{(instrument name, sorted labels): value} of the host gauges in one collection."""
    return {
        (point.name, tuple(sorted(point.labels.items()))): point.value
        for point in captured.collect()
        if point.name in (CPU, MEMORY, DISK)
    }


class Readings:
    """cpu_times() readings handed out in order, for CpuUsage."""

    def __init__(self, *readings: CpuTimes) -> None:
        self._readings = list(readings)

    def __call__(self) -> CpuTimes:
        return self._readings.pop(0)


@pytest.mark.parametrize(
    "start,end,expected",
    [
        (_times(busy=10, idle=90), _times(busy=40, idle=160), 0.3),  # 30 busy of 100 seconds
        (_times(busy=10, idle=90), _times(busy=110, idle=90), 1.0),  # fully busy
        (_times(busy=10, idle=90), _times(busy=10, idle=190), 0.0),  # idle
        (_times(busy=0, idle=0, iowait=0), _times(busy=20, idle=40, iowait=40), 0.2),  # waiting for I/O is idle
        (_times(busy=0, idle=0), _times(busy=50, idle=50, guest=50), 0.5),  # guest time is not counted twice
        (_times(busy=10, idle=90), _times(busy=10, idle=90), None),  # no time passed: nothing to say
    ],
)
def test_cpu_usage_is_the_busy_share_since_the_previous_read(start, end, expected):
    """CPU usage is busy over total CPU time between two cpu_times() readings, as psutil.cpu_percent counts it."""
    usage = CpuUsage(Readings(start, end))
    assert usage() == expected


def test_cpu_usage_counts_from_the_previous_read():
    """Each read starts where the last one ended: the first from construction, so the first export has a value."""
    usage = CpuUsage(Readings(_times(0, 0), _times(10, 10), _times(10, 30)))
    assert (usage(), usage()) == (0.5, 0.0)


def _host_metrics(captured: CapturedTelemetry, **readers) -> HostMetrics:
    defaults = {
        "cpu_usage": lambda: 0.42,
        "memory_usage": lambda: 0.5,
        "disk_free": {"/": 0.3, "/dev/shm": 0.9}.__getitem__,
    }
    return HostMetrics(captured.meter_provider, "api-1", ["/", "/dev/shm"], **{**defaults, **readers})


def _boom(*_args):
    raise OSError("gone")


@pytest.mark.parametrize(
    "readers,expected",
    [
        (
            {},
            {
                (CPU, (("host", "api-1"),)): 0.42,
                (MEMORY, (("host", "api-1"),)): 0.5,
                (DISK, (("host", "api-1"), ("path", "/"))): 0.3,
                (DISK, (("host", "api-1"), ("path", "/dev/shm"))): 0.9,
            },
        ),
        (
            {"cpu_usage": lambda: None},
            {
                (MEMORY, (("host", "api-1"),)): 0.5,
                (DISK, (("host", "api-1"), ("path", "/"))): 0.3,
                (DISK, (("host", "api-1"), ("path", "/dev/shm"))): 0.9,
            },
        ),
        (
            {"cpu_usage": _boom, "memory_usage": _boom},
            {(DISK, (("host", "api-1"), ("path", "/"))): 0.3, (DISK, (("host", "api-1"), ("path", "/dev/shm"))): 0.9},
        ),
        (
            {"disk_free": lambda path: 0.3 if path == "/" else _boom()},
            {
                (CPU, (("host", "api-1"),)): 0.42,
                (MEMORY, (("host", "api-1"),)): 0.5,
                (DISK, (("host", "api-1"), ("path", "/"))): 0.3,
            },
        ),
    ],
)
def test_gauges_are_labelled_by_host_and_a_failing_reading_is_left_out(readers, expected):
    """CPU and memory carry the host label, disk also the mount point; a reading that fails or has no value is
    not observed, and the others still are (nothing raises into the export)."""
    captured = in_memory_telemetry()
    _host_metrics(captured, **readers)
    assert _points(captured) == expected


def test_paths_on_one_file_system_give_one_disk_series(tmp_path):
    """Paths are watched per file system: two directories of one mount, and one not created yet, are one series."""
    assert mount_points([str(tmp_path), str(tmp_path / "not" / "yet"), "/", "/dev/shm"]) == ["/", "/dev/shm"]


def test_real_readings_are_ratios():
    """With psutil, every gauge is a ratio between 0 and 1."""
    captured = in_memory_telemetry()
    HostMetrics(captured.meter_provider, "api-1", ["/"])
    time.sleep(0.1)  # CPU time passes between set-up and the export (cpu_times() counts in clock ticks)
    points = _points(captured)
    assert {name for name, _ in points} == {CPU, MEMORY, DISK}
    assert all(0.0 <= value <= 1.0 for value in points.values()), points


@pytest.mark.parametrize(
    "environment,host,paths",
    [
        ({}, socket.gethostname(), ["LOG_DIR", "CWD"]),
        ({"OTEL_MONITOR_HOST_NAME": "worker-7"}, "worker-7", ["LOG_DIR", "CWD"]),
        ({"OTEL_MONITOR_HOST_NAME": " "}, socket.gethostname(), ["LOG_DIR", "CWD"]),
        ({"OTEL_MONITOR_DISK_PATHS": "/dev/shm, /"}, socket.gethostname(), ["/dev/shm", "/"]),
        ({"OTEL_MONITOR_DISK_PATHS": '["/dev/shm"]'}, socket.gethostname(), ["/dev/shm"]),
    ],
)
def test_host_name_and_disk_paths_come_from_the_settings(monkeypatch, tmp_path, environment, host, paths):
    """OTEL_MONITOR_HOST_NAME names the host (default: the hostname); OTEL_MONITOR_DISK_PATHS (comma-separated or
    JSON) picks the file systems (default: the log dir's and the current directory's)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    log_dir = tmp_path / "logs"
    settings = TelemetrySettings(log_dir=str(log_dir))
    metrics = export_host_metrics(settings, in_memory_telemetry().meter_provider)
    wanted = [{"LOG_DIR": str(log_dir), "CWD": os.getcwd()}.get(path, path) for path in paths]
    assert (metrics.host_name, metrics.mount_points) == (host, mount_points(wanted))


@pytest.mark.parametrize("value", ["[1, ", "[1]", '["/", null]'])
def test_bad_disk_paths_fail_at_load_naming_the_key(monkeypatch, value):
    """A disk path list that is neither comma-separated text nor a JSON list of strings fails at load."""
    monkeypatch.setenv("OTEL_MONITOR_DISK_PATHS", value)
    with pytest.raises(ValidationError) as raised:
        TelemetrySettings()
    assert "disk_paths" in str(raised.value)


@pytest.mark.parametrize("switch,exported", [(None, {CPU, MEMORY, DISK}), ("false", set())])
def test_setup_telemetry_exports_the_host_unless_switched_off(monkeypatch, tmp_path, switch, exported):
    """Every process set up with setup_telemetry exports its host's gauges; OTEL_MONITOR_HOST_METRICS=false
    switches them off."""
    monkeypatch.setenv("OTEL_MONITOR_HOST_NAME", "api-1")
    if switch is not None:
        monkeypatch.setenv("OTEL_MONITOR_HOST_METRICS", switch)
    settings = TelemetrySettings(log_dir=str(tmp_path), console_logs=False, export_logs=False)
    with capture_telemetry(settings, instrument_httpx=False) as captured:
        time.sleep(0.1)  # CPU time passes between set-up and the export (cpu_times() counts in clock ticks)
        points = _points(captured)
    assert {name for name, _ in points} == exported
    assert all(dict(labels)[HostLabel.HOST] == "api-1" for _, labels in points)


# -- the rules and the dashboard read the series through the same PromQL ----------------------------------------
def _rules() -> dict[str, dict]:
    # Through the loader: the file's thresholds are ${thresholds.…} references to config/thresholds.yaml.
    return {
        rule.name: rule.model_dump(mode="json", exclude_unset=True) for rule in load_rules(RULES_FILE, promtool=None)
    }


@pytest.mark.parametrize(
    "rule,query,threshold",
    [
        ("CpuUsageCritical", HOST_CPU, "> 0.90"),
        ("CpuUsageHigh", HOST_CPU, "> 0.80 <= 0.90"),
        ("MemoryUsageCritical", HOST_MEMORY, "> 0.90"),
        ("MemoryUsageHigh", HOST_MEMORY, "> 0.80 <= 0.90"),
        ("DiskSpaceLow", HOST_DISK_FREE, "< 0.20 >= 0.10"),
        ("HostDiskSpaceInsufficient", HOST_DISK_FREE, "< 0.10"),
    ],
)
def test_system_rules_compare_the_per_host_query(rule, query, threshold):
    """Each system rule is the per-host query of host_metrics.py and the required threshold, nothing else."""
    assert re.sub(r"\s+", " ", _rules()[rule]["expr"]).strip() == f"{query} {threshold}"


def test_host_disk_rule_is_a_p0_at_the_p0_cadence():
    """A backend host's disk below 10 % free is P0 DISK_SPACE_INSUFFICIENT, evaluated at the P0 cadence (no
    interval of its own) and at once (no for)."""
    rule = _rules()["HostDiskSpaceInsufficient"]
    assert (rule["priority"], rule["error_code"], rule["for_seconds"]) == ("P0", "DISK_SPACE_INSUFFICIENT", 0)
    assert "interval_seconds" not in rule


def _dashboard_queries() -> set[str]:
    board = json.loads(SYSTEM_DASHBOARD.read_text())
    return {target["expr"] for panel in board["panels"] for target in panel.get("targets", ())}


@pytest.mark.parametrize("query", [HOST_CPU, HOST_MEMORY, HOST_DISK_FREE])
def test_system_dashboard_draws_one_line_per_host(query):
    """The system dashboard's CPU, memory and disk panels draw the per-host query (filtered by the $host
    variable), so each host is its own line."""
    drawn = {expr.replace('{host=~"$host"}', "") for expr in _dashboard_queries()}
    assert query in drawn


# -- two real processes, two hosts -------------------------------------------------------------------------------
_JOB = f"host-metrics-{os.getpid()}"
_BACKEND = textwrap.dedent("""
    import sys
    from otel_monitor.instrument.telemetry import setup_telemetry

    telemetry = setup_telemetry(instrument_httpx=False)
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin
    telemetry.shutdown()
""")


@pytest.fixture(scope="module")
def two_hosts(stack, tmp_path_factory) -> dict[str, list[str]]:
    """Two backend processes set up with setup_telemetry against the real collector, as hosts api-1 (default disk
    paths: its log dir and working directory) and worker-1 (/dev/shm and /), exporting every second; yields
    {host: the mount points it watches}, all under the job _JOB."""
    log_dir = tmp_path_factory.mktemp("host-logs")
    hosts = {"api-1": None, "worker-1": "/dev/shm,/"}
    processes = []
    for host, paths in hosts.items():
        env = {
            **os.environ,
            "OTEL_MONITOR_OTLP_ENDPOINT": stack.otlp_http_endpoint,
            "OTEL_MONITOR_SERVICE_NAME": _JOB,
            "OTEL_MONITOR_HOST_NAME": host,
            "OTEL_MONITOR_METRIC_EXPORT_INTERVAL_SECONDS": "1",
            "OTEL_MONITOR_LOG_DIR": str(log_dir),
            "OTEL_MONITOR_CONSOLE_LOGS": "false",
            "OTEL_MONITOR_EXPORT_LOGS": "false",
        }
        env.pop("OTEL_MONITOR_DISK_PATHS", None)
        if paths:
            env["OTEL_MONITOR_DISK_PATHS"] = paths
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", _BACKEND],
                cwd=REPO_ROOT,
                env=env,
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        yield {
            host: mount_points(paths.split(",") if paths else [str(log_dir), str(REPO_ROOT)])
            for host, paths in hosts.items()
        }
    finally:
        for process in processes:
            process.stdin.close()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


_HOST_SERIES = re.compile(rf"\b({PromNames.HOST_CPU_USAGE}|{PromNames.HOST_MEMORY_USAGE}|{PromNames.HOST_DISK_FREE})\b")


def _wait_for_series(stack, query: str, labels: tuple[str, ...], expected: set[tuple]) -> dict[tuple, float]:
    """{label values: value} of the query once it gives the expected label sets (or the last answer)."""
    found: dict[tuple, float] = {}

    def arrived() -> bool:
        found.clear()
        found.update(prom_values(stack.prometheus_url, query, labels))
        return set(found) == expected

    try:
        wait_until(arrived, 60, interval=1.0, what=query)
    except TimeoutError:
        pass
    return found


@pytest.mark.stack
@pytest.mark.parametrize(
    "query,labels",
    [
        (HOST_CPU, ("host",)),
        (HOST_MEMORY, ("host",)),
        (HOST_DISK_FREE, ("host", "path")),
        (HOST_CPU_PEAK, ("host",)),
        (HOST_MEMORY_PEAK, ("host",)),
        (HOST_DISK_FREE_LOWEST, ("host", "path")),
    ],
)
def test_two_processes_with_different_host_names_are_two_hosts(stack, two_hosts, query, labels):
    """Through the real collector and Prometheus, each process's host series carry its host label (and disk the
    mount point), so the per-host queries of the rules, the dashboard and the daily summary give one value per
    host (per host and file system), each a ratio."""
    if HostLabel.PATH in labels:
        expected = {(host, mount) for host, mounts in two_hosts.items() for mount in mounts}
    else:
        expected = {(host,) for host in two_hosts}
    job = f'{{job="{_JOB}"}}'
    if "{window}" in query:  # a peak: its own selector
        scoped = query.format(window="5m", selector=job)
    else:
        scoped = _HOST_SERIES.sub(lambda match: match[0] + job, query)
    found = _wait_for_series(stack, scoped, labels, expected)
    assert set(found) == expected, scoped
    assert all(0.0 <= value <= 1.0 for value in found.values()), found

"""The health service's system gauges (database connections, host CPU and memory) against real PostgreSQL and psutil."""

from __future__ import annotations

import asyncio
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import psycopg
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.monitor.health.metrics import HealthMetricNames, HealthPromNames
from otel_monitor.monitor.health.service import HealthService
from otel_monitor.testing import CapturedTelemetry, in_memory_telemetry
from tests.support.backends import prom_values
from tests.support.health import LATENCY_NOT_JUDGED
from tools.devstack import free_port, wait_until
from tools.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.stack

NAMES = HealthMetricNames
RULES_FILE = REPO_ROOT / "config" / "alert-rules.yaml"
_HEALTH_SERIES = re.compile(r"\botel_monitor_health_\w+")
# The box is shared with other test runs (2 cores): CPU moves between two reads a few milliseconds apart.
_CPU_TOLERANCE = 0.10


def _config(**overrides) -> HealthConfig:
    # A generous timeout: the test is about the count, not timing, and this machine may be busy.
    return HealthConfig(**{"check_timeout_seconds": 3.0, **LATENCY_NOT_JUDGED, **overrides})


def _service(config: HealthConfig, captured: CapturedTelemetry) -> HealthService:
    return HealthService.from_config(config, captured.meter_provider)


def _points(captured: CapturedTelemetry) -> dict[str, float]:
    """{instrument name: value} of one collection (these gauges carry no attributes)."""
    return {point.name: point.value for point in captured.collect()}


@pytest.mark.parametrize("extra", [3, 10])
def test_database_connections_rise_with_open_connections(stack, extra):
    """N more connections on the real PostgreSQL: the gauge rises by at least N, the check stays healthy."""
    captured = in_memory_telemetry()
    service = _service(_config(database_url=stack.postgres_url), captured)
    asyncio.run(service.refresh())
    before = _points(captured)[NAMES.DATABASE_CONNECTIONS]
    conninfo = stack.postgres_url.replace("postgresql+psycopg://", "postgresql://")
    held = [psycopg.connect(conninfo) for _ in range(extra)]
    try:
        report = asyncio.run(service.refresh())
        after = _points(captured)[NAMES.DATABASE_CONNECTIONS]
    finally:
        for conn in held:
            conn.close()
    assert report["checks"]["database"]["status"] == "healthy", report
    assert before >= 1  # the check's own connection
    assert after - before >= extra, (before, after)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({}, id="no-database-configured"),
        pytest.param({"database_url": "postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"}, id="database-down"),
    ],
)
def test_database_connections_not_observed_without_a_count(config):
    """No database check, or a database that refuses: no connections series (never a made-up 0)."""
    captured = in_memory_telemetry()
    port = free_port()  # nothing listens: connection refused
    service = _service(_config(**{key: value.format(port=port) for key, value in config.items()}), captured)
    asyncio.run(service.refresh())
    assert NAMES.DATABASE_CONNECTIONS not in _points(captured)


def test_cpu_is_not_observed_before_it_has_a_baseline():
    """The first collection on a thread has no CPU baseline: no CPU point, rather than psutil's meaningless 0."""
    captured = in_memory_telemetry()
    _service(_config(), captured)
    first = _points(captured)
    assert NAMES.CPU_USAGE_RATIO not in first
    assert NAMES.CPU_USAGE_RATIO in _points(captured)


@pytest.mark.parametrize(
    "name,expected,tolerance",
    [
        (NAMES.CPU_USAGE_RATIO, lambda: psutil.cpu_percent(interval=None) / 100, _CPU_TOLERANCE),
        (NAMES.MEMORY_USAGE_RATIO, lambda: psutil.virtual_memory().percent / 100, 0.02),
    ],
)
def test_host_usage_is_a_ratio_equal_to_psutils(name, expected, tolerance):
    """CPU and memory are ratios in [0, 1] that agree with psutil read over the same second."""
    captured = in_memory_telemetry()
    _service(_config(), captured)
    # psutil's CPU baseline is per thread: the reference reads on a thread of its own, over the same window.
    with ThreadPoolExecutor(max_workers=1) as reference:
        reference.submit(expected).result()
        _points(captured)
        time.sleep(1.0)
        observed = _points(captured)[name]
        wanted = reference.submit(expected).result()
    assert 0.0 <= observed <= 1.0
    assert observed == pytest.approx(wanted, abs=tolerance)


def _rule_series(rule_name: str) -> set[str]:
    rules = {rule["name"]: rule for rule in yaml.safe_load(RULES_FILE.read_text())["rules"]}
    return set(_HEALTH_SERIES.findall(rules[rule_name]["expr"]))


@pytest.fixture(scope="module")
def exported_series(stack):
    """The otel_monitor_health_* names Prometheus holds after the health service exported once through the
    real collector (OTLP), with a database check on the real PostgreSQL."""
    job = f"health-system-metrics-{os.getpid()}"
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{stack.otlp_http_endpoint}/v1/metrics"), export_interval_millis=3_600_000
    )
    provider = MeterProvider(resource=Resource.create({"service.name": job}), metric_readers=[reader])
    service = HealthService.from_config(_config(database_url=stack.postgres_url), provider)
    asyncio.run(service.refresh())
    provider.force_flush()  # sets this thread's CPU baseline
    time.sleep(0.2)
    provider.force_flush()
    query = f'count by (__name__) ({{job="{job}", __name__=~"otel_monitor_health_.*"}})'
    wanted = {HealthPromNames.DATABASE_CONNECTIONS, HealthPromNames.CPU_USAGE_RATIO, HealthPromNames.MEMORY_USAGE_RATIO}
    names: set[str] = set()

    def arrived() -> bool:
        names.clear()
        names.update(name for (name,) in prom_values(stack.prometheus_url, query, ("__name__",)))
        return wanted <= names

    try:
        wait_until(arrived, 30, interval=0.5, what="the health series in Prometheus")
    except TimeoutError:
        pass
    provider.shutdown()
    return names


@pytest.mark.parametrize(
    "rule,series",
    [  # the CPU and memory rules read the backend hosts: test_host_metrics.py
        ("DatabaseConnectionsCritical", HealthPromNames.DATABASE_CONNECTIONS),
        ("DatabaseConnectionsHigh", HealthPromNames.DATABASE_CONNECTIONS),
    ],
)
def test_rules_read_the_series_the_collector_exports(exported_series, rule, series):
    """Each system rule reads exactly the series metrics.py names, and the real collector exports it by that name."""
    assert _rule_series(rule) == {series}
    assert series in exported_series, sorted(exported_series)

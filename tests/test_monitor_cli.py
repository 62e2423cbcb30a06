"""The `otel-monitor` command: check-config names file, line and key with exit 2; serve answers health and quota."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from examples.demo_backend.launcher import DEMO_SECRETS
from examples.monitor_launcher import MonitorProcess
from otel_monitor.devstack import wait_until
from otel_monitor.devstack.stack import REPO_ROOT
from tests.support.backends import prom_values

INVALID = REPO_ROOT / "tests" / "testdata" / "config"


def otel_monitor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_monitor.cli", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=60)


@pytest.mark.parametrize("fixture,expected", [
    ("unknown_key.yaml", "unknown_key.yaml:5: health.redis_ulr: unknown key"),
    ("bad_port.yaml", "bad_port.yaml:3: server.port: Input should be less than or equal to 65535"),
    ("bad_timezone.yaml", "bad_timezone.yaml:5: quota.youtube.reset.timezone: Value error, unknown IANA time zone"),
    ("bad_store_url.yaml", "bad_store_url.yaml:3: quota.store_url: Value error, not a SQLAlchemy database URL"),
    ("bad_environment.yaml", "bad_environment.yaml:1: environment: Input should be 'development'"),
    ("bad_yaml.yaml", "bad_yaml.yaml:3: invalid YAML"),
    ("bad_rules_reference.yaml", "tests/testdata/rules/unknown_inhibited_by.yaml:19: rules.1.inhibited_by.1: unknown rule"),
])
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_invalid_config_names_file_line_and_key_and_exits_2(command, fixture, expected):
    """check-config and serve refuse an invalid file with the same FILE:LINE: KEY: message and exit status 2."""
    path = str(INVALID / fixture)
    result = otel_monitor(*(["check-config", path] if command == "check-config" else ["serve", "--config", path]))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_shipped_example_config_is_valid():
    """examples/monitor.yaml passes check-config, with the shipped alert rules it names."""
    result = otel_monitor("check-config", "examples/monitor.yaml")
    assert result.returncode == 0, result.stderr
    assert "alert rules" in result.stdout


@pytest.fixture
def monitor(stack, fakes, tmp_path):
    """`otel-monitor serve` against the stack's PostgreSQL and Redis and the fake D-ID and Stability."""
    for service in ("d-id", "stability"):
        fakes.set_fault(service, mode="ok")
    process = MonitorProcess(
        stack, tmp_path, service_name="monitor-under-test",
        health={"celery_queues": ["no-worker-consumes-this"], "check_timeout_seconds": 2},
        quota={"d_id": {"base_url": fakes.base_url("d-id"), "api_key": "${DID_API_KEY}"},
               "stability": {"base_url": fakes.base_url("stability"), "api_key": "${STABILITY_API_KEY}",
                             "baseline": 100}},
        env={"DID_API_KEY": DEMO_SECRETS["did_api_key"], "STABILITY_API_KEY": DEMO_SECRETS["stability_api_key"]},
    )
    with process:
        yield process.url, tmp_path


@pytest.mark.stack
def test_serve_answers_health_and_quota_and_exports_their_metrics(monitor, stack):
    """The served API answers the spec's health and quota shapes; its gauges reach Prometheus via the collector."""
    url, workdir = monitor
    health = httpx.get(f"{url}/api/v1/system/health", timeout=10)
    body = health.json()
    assert set(body) == {"status", "timestamp", "checks"} and body["timestamp"].endswith("Z")
    assert set(body["checks"]) == {"database", "redis", "celery", "disk", "ffmpeg"}
    assert {k: body["checks"][k]["status"] for k in ("database", "redis", "ffmpeg")} == {
        "database": "healthy", "redis": "healthy", "ffmpeg": "healthy"}
    assert body["checks"]["celery"]["status"] == "unhealthy"  # nobody consumes the configured queue
    assert (health.status_code, body["status"]) == (503, "unhealthy")

    quota = wait_until(lambda: (q := httpx.get(f"{url}/api/v1/system/quota", timeout=10).json())
                       ["quotas"]["d_id"]["total"] and q, 30, what="the first D-ID poll")
    assert set(quota["quotas"]) == {"gemini", "stability", "d_id", "youtube"}
    for entry in quota["quotas"].values():
        assert {"used", "total", "percentage", "reset_date", "status"} <= set(entry)
    assert quota["quotas"]["stability"]["reset_date"] is None

    job = 'job="monitor-under-test"'
    up = f'max by (check) (otel_monitor_health_check_up{{{job}, check=~"redis|celery"}})'
    want = {("redis",): 1.0, ("celery",): 0.0}
    wait_until(lambda: prom_values(stack.prometheus_url, up, ("check",)) == want, 30, interval=1,
               what="health gauges in Prometheus")
    assert prom_values(stack.prometheus_url, f'quota_limit{{{job}, service="d-id"}}', ()) != {}
    logs = "".join(p.read_text() for p in Path(workdir).rglob("*") if p.is_file() and p.suffix in (".log", ".out"))
    for secret in (DEMO_SECRETS["did_api_key"], DEMO_SECRETS["stability_api_key"]):
        assert secret not in logs and secret not in health.text

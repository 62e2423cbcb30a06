"""The P2 daily summary: send-time maths, and its counts against the real Prometheus fed by the demo backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.delivery.daily_summary import (
    SUMMARY_MESSAGE,
    DailySummary,
    DailySummaryConfig,
    day_bounds,
    next_send_time,
)
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.quota.day_windows import quota_windows_between
from otel_monitor.monitor.quota.reset_schedule import ResetRule
from otel_monitor.monitor.quota.store import QuotaStore
from tests.support.demo import create_project, demo_backend, wait_finished

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("now", "send_time", "zone", "expected"),
    [
        pytest.param(
            dt.datetime(2026, 3, 1, 7, 0, tzinfo=UTC),
            dt.time(8),
            UTC,
            dt.datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
            id="later-today",
        ),
        pytest.param(
            dt.datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
            dt.time(8),
            UTC,
            dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
            id="at-send-time-means-tomorrow",
        ),
        pytest.param(
            dt.datetime(2026, 3, 1, 7, 30, tzinfo=UTC),
            dt.time(8),
            PARIS,
            dt.datetime(2026, 3, 2, 7, 0, tzinfo=UTC),
            id="local-zone-winter",
        ),
        pytest.param(
            dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC),
            dt.time(8),
            PARIS,
            dt.datetime(2026, 3, 29, 6, 0, tzinfo=UTC),
            id="across-dst-start",
        ),
    ],
)
def test_next_send_time(now, send_time, zone, expected):
    """The next send time is the configured local time, after now, in UTC."""
    assert next_send_time(now, send_time, zone) == expected


@pytest.mark.parametrize(
    ("day", "zone", "hours"),
    [(dt.date(2026, 3, 1), UTC, 24), (dt.date(2026, 3, 29), PARIS, 23), (dt.date(2026, 10, 25), PARIS, 25)],
)
def test_day_bounds(day, zone, hours):
    """A local day runs midnight to midnight: 23 or 25 hours on DST days."""
    start, end = day_bounds(day, zone)
    assert start.astimezone(zone).time() == dt.time() and (end - start) == dt.timedelta(hours=hours)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"timezone": "Mars/Olympus"}, id="unknown-zone"),
        pytest.param({"send_time": "25:00"}, id="bad-time"),
        pytest.param({"sendtime": "08:00"}, id="unknown-key"),
    ],
)
def test_invalid_config(config):
    """Each invalid summary config is refused at load time."""
    with pytest.raises(ValidationError):
        DailySummaryConfig.model_validate(config)


# -- against the real stack -------------------------------------------------------------------------------------


@pytest.fixture
def demo(stack, fakes, workdir):
    """The demo API and worker, reporting as a job name of this test's own."""
    backend = demo_backend(stack, fakes, workdir, f"summary{int(time.time())}").start()
    yield backend
    backend.stop()


def _project(demo, steps) -> str:
    return create_project(demo, steps)["project_id"]


@pytest.mark.stack
@pytest.mark.asyncio
async def test_summary_counts_equal_the_calls_made(demo, stack, fakes, workdir, caplog):
    """Projects, API calls per service and the commonest errors in the summary equal what the test generated."""
    plan = [("gemini", "ok", 3), ("gemini", "invalid_key", 2), ("stability", "ok", 1)]
    for service, mode, count in plan:
        fakes.set_fault(service, mode=mode, latencies=[0])
        ids = {_project(demo, [service]) for _ in range(count)}
        await asyncio.to_thread(wait_finished, demo, ids)
    now = dt.datetime.now(UTC)
    day_start = dt.datetime.combine(now.date(), dt.time(), UTC)
    quota = QuotaStore(f"sqlite:///{workdir / 'quota.db'}")
    quota.migrate()
    quota.add("gemini", 49, 1000, 4.9, max(day_start, now - dt.timedelta(seconds=30)))
    quota_service = SimpleNamespace(store=quota, sources={"gemini": SimpleNamespace(rule=ResetRule.daily())})
    config = DailySummaryConfig(
        prometheus_url=stack.prometheus_url, matchers=f'job="{demo.worker_service}"', reports_dir=workdir / "reports"
    )
    summary = DailySummary(config, quota_windows=lambda start, end: quota_windows_between(quota_service, start, end))
    today = dt.datetime.now(UTC).date()
    want_calls = {
        "gemini": {"total": 5, "success": 3, "failed": 2, "success_rate": 60},
        "stability": {"total": 1, "success": 1, "failed": 0, "success_rate": 100},
    }

    line: dict = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the last exports reach Prometheus within a few scrapes
        line = await summary.build(today)
        if line["statistics"]["api_calls"] == want_calls and line["statistics"]["total_projects"] == 6:
            break
        await asyncio.sleep(1)
    stats = line["statistics"]
    assert stats["api_calls"] == want_calls
    assert (stats["total_projects"], stats["successful_projects"], stats["failed_projects"]) == (6, 4, 2)
    assert stats["success_rate"] == 66.7
    assert stats["average_duration_minutes"] is not None and stats["average_duration_minutes"] >= 0
    assert stats["most_common_errors"] == [{"error_code": "GEMINI_INVALID_API_KEY", "service": "gemini", "count": 2}]
    tomorrow = iso_utc(day_start + dt.timedelta(days=1))
    assert stats["quota_usage"] == {
        "gemini": {
            "used": 49,
            "total": 1000,
            "percentage": 4.9,
            "reset_date": tomorrow,
            "windows": [
                {
                    "used": 49,
                    "total": 1000,
                    "percentage": 4.9,
                    "window_start": iso_utc(day_start),
                    "reset_date": tomorrow,
                }
            ],
        }
    }
    performance = stats["system_performance"]["apis"]
    assert set(performance) == {"gemini", "stability"}
    assert performance["gemini"]["success_rate"] == 60
    assert 0 < performance["gemini"]["p50_seconds"] <= performance["gemini"]["p99_seconds"]
    (host,) = stats["system_performance"]["hosts"].values()  # the demo's processes run on this machine
    assert 0 <= host["cpu_peak_percent"] <= 100 and 0 < host["memory_peak_percent"] <= 100
    assert host["disk_free_min_percent"] == min(host["disk_free_min_percent_by_path"].values()) > 0

    with caplog.at_level(logging.INFO, logger="otel_monitor.alerts"):
        notification = await summary.produce(today)
    (record,) = [r for r in caplog.records if r.getMessage() == SUMMARY_MESSAGE]
    assert record.levelno == logging.INFO and record.report_type == "daily_summary"
    assert record.date == today.isoformat() and record.statistics["api_calls"] == want_calls
    kept = json.loads((workdir / "reports" / f"daily-summary-{today.isoformat()}.json").read_text())
    assert kept["statistics"]["api_calls"] == want_calls and kept["report_type"] == "daily_summary"
    assert notification.alert.priority is Priority.P2 and notification.report == kept
    quota.close()

"""Pure parts of the health report: status aggregation, HTTP codes, IETF rendering, config validation, parsers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from otel_monitor._utc_time import epoch_iso_utc
from otel_monitor.monitor.health.checks import DiskCheck, describe_error, disk_status, parse_ffmpeg_version
from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.monitor.health.router import wants_health_json
from otel_monitor.monitor.health.status import aggregate_status, http_status_code, render_health_json

GB = 1024**3


@pytest.mark.parametrize(
    "statuses,expected",
    [
        ([], "healthy"),
        (["healthy"], "healthy"),
        (["healthy", "healthy", "healthy"], "healthy"),
        (["healthy", "degraded"], "degraded"),
        (["degraded", "degraded"], "degraded"),
        (["healthy", "unhealthy"], "unhealthy"),
        (["degraded", "unhealthy", "healthy"], "unhealthy"),
        (["healthy", "bogus"], "unhealthy"),
    ],
)
def test_overall_status_is_the_worst_check(statuses, expected):
    """Unhealthy if any check is, else degraded if any is, else healthy; an unknown status counts as unhealthy."""
    assert aggregate_status({f"c{i}": {"status": s} for i, s in enumerate(statuses)}) == expected


@pytest.mark.parametrize("status,code", [("healthy", 200), ("degraded", 200), ("unhealthy", 503)])
def test_http_status_code(status, code):
    """The endpoint answers 200 while the backend serves (healthy, degraded) and 503 when it is unhealthy."""
    assert http_status_code(status) == code


REPORT = {
    "status": "unhealthy",
    "timestamp": "2025-10-20T10:30:15.123Z",
    "checks": {
        "database": {"status": "healthy", "latency_ms": 3.2},
        "redis": {"status": "unhealthy", "latency_ms": None, "error": "timed out after 1.0 s"},
        "celery": {"status": "degraded", "active_workers": 2, "pending_tasks": 60, "error": "60 pending tasks"},
        "disk": {"status": "healthy", "free_gb": 40.0, "total_gb": 100.0, "percentage_used": 60.0},
        "ffmpeg": {"status": "healthy", "version": "5.1.6-0+deb12u1"},
    },
}


def test_ietf_rendering_of_a_report():
    """health+json: pass/warn/fail, "name:measurement" keys, each a list of objects with the draft's fields."""
    rendered = render_health_json(REPORT)
    assert rendered["status"] == "fail"
    assert rendered["checks"]["database:responseTime"] == [
        {
            "componentType": "datastore",
            "observedValue": 3.2,
            "observedUnit": "ms",
            "status": "pass",
            "time": "2025-10-20T10:30:15.123Z",
        }
    ]
    assert rendered["checks"]["redis:responseTime"][0]["status"] == "fail"
    assert rendered["checks"]["redis:responseTime"][0]["output"] == "timed out after 1.0 s"
    assert rendered["checks"]["celery:queueLength"][0] | {"output": None} == {
        "componentType": "component",
        "observedValue": 60,
        "observedUnit": "tasks",
        "status": "warn",
        "time": "2025-10-20T10:30:15.123Z",
        "output": None,
    }
    assert rendered["checks"]["celery:workers"][0]["observedValue"] == 2
    assert rendered["checks"]["disk:utilization"][0]["observedValue"] == 60.0
    assert rendered["checks"]["disk:freeSpace"][0]["observedUnit"] == "GiB"
    assert rendered["checks"]["ffmpeg:version"][0]["observedValue"] == "5.1.6-0+deb12u1"
    for entries in rendered["checks"].values():
        assert {"componentType", "observedValue", "status", "time"} <= set(entries[0])


@pytest.mark.parametrize("status,expected", [("healthy", "pass"), ("degraded", "warn"), ("unhealthy", "fail")])
def test_ietf_overall_status(status, expected):
    """The overall status maps to the draft's pass/warn/fail; a check of unknown name renders under its name."""
    rendered = render_health_json({"status": status, "timestamp": "t", "checks": {"queue": {"status": status}}})
    assert rendered["status"] == expected
    assert rendered["checks"]["queue"] == [{"componentType": "component", "status": expected, "time": "t"}]


@pytest.mark.parametrize(
    "accept,expected",
    [
        (None, False),
        ("application/json", False),
        ("*/*", False),
        ("application/health+json", True),
        ("application/health+json, application/json;q=0.9", True),
        ("application/json, application/health+json;q=0.5", False),
        ("application/health+json;q=0", False),
        ("text/html, application/health+json", True),
    ],
)
def test_accept_negotiation(accept, expected):
    """health+json is answered when the Accept header prefers it to application/json."""
    assert wants_health_json(accept) is expected


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"unknown_key": 1}, "unknown_key"),
        ({"database_url": "mysql://root:hunter22@db/app"}, "database_url"),
        ({"redis_url": "http://:hunter22@cache:6379"}, "redis_url"),
        ({"celery_broker_url": "amqp://guest:hunter22@mq//"}, "celery_broker_url"),
        ({"celery_queues": []}, "celery_queues"),
        ({"celery_queues": [" "]}, "celery_queues"),
        ({"check_timeout_seconds": 0}, "check_timeout_seconds"),
        ({"cache_ttl_seconds": -1}, "cache_ttl_seconds"),
        ({"disk_free_degraded_below_percent": 150}, "disk_free_degraded_below_percent"),
        ({"disk_free_unhealthy_below_percent": 30}, "disk_free_unhealthy_below_percent"),
        ({"celery_queue_degraded_above": -1}, "celery_queue_degraded_above"),
        ({"celery_queue_critical_above": 40}, "celery_queue_critical_above"),
        ({"celery_queue_critical_status": "down"}, "celery_queue_critical_status"),
        ({"celery_stall_seconds": 0}, "celery_stall_seconds"),
        ({"celery_inspect_timeout_seconds": 1.0}, "celery_inspect_timeout_seconds"),
    ],
)
def test_invalid_config_names_the_field(overrides, field):
    """Each invalid value fails at load with an error naming its field, never echoing the input (a password)."""
    with pytest.raises(ValidationError) as caught:
        HealthConfig(**overrides)
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
    assert field in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_default_config_has_the_spec_numbers():
    """Defaults: health every 5 minutes, disk 20 %/10 % free, Celery queue 50/100, timeout 1 s; URLs not in repr."""
    config = HealthConfig(database_url="postgresql+psycopg://app:hunter22@db/app")
    assert (config.cache_ttl_seconds, config.check_timeout_seconds) == (300, 1.0)
    assert (config.disk_free_degraded_below_percent, config.disk_free_unhealthy_below_percent) == (20, 10)
    assert (config.celery_queue_degraded_above, config.celery_queue_critical_above) == (50, 100)
    assert config.celery_queues == ["celery"] and config.ffmpeg_binary == "ffmpeg" and config.disk_path == "/"
    assert "hunter22" not in repr(config)


@pytest.mark.parametrize(
    "free_percent,status",
    [
        (60, "healthy"),
        (20.5, "healthy"),
        (20, "healthy"),
        (19.9, "degraded"),
        (10.5, "degraded"),
        (10, "degraded"),
        (9.9, "unhealthy"),
        (0, "unhealthy"),
    ],
)
def test_disk_thresholds(free_percent, status):
    """Disk: degraded below 20 % free, unhealthy below 10 % (spec thresholds), read through an injected reader."""
    assert disk_status(free_percent) == status
    usage = SimpleNamespace(total=100 * GB, free=int(free_percent * GB))
    result = asyncio.run(DiskCheck("/data", usage_reader=lambda path: usage).run())
    assert result["status"] == status
    assert result["total_gb"] == 100.0 and result["free_gb"] == pytest.approx(free_percent, abs=0.01)
    assert result["percentage_used"] == pytest.approx(100 - free_percent, abs=0.1)
    assert ("error" in result) is (status != "healthy")


def test_disk_reader_failure_is_unhealthy():
    """A path that cannot be read (statvfs fails) makes the disk check unhealthy with the error."""

    def unreadable(path):
        raise FileNotFoundError(2, "No such file or directory", path)

    result = asyncio.run(DiskCheck("/missing", usage_reader=unreadable).run())
    assert result["status"] == "unhealthy" and result["free_gb"] is None and "No such file" in result["error"]


@pytest.mark.parametrize(
    "output,version",
    [
        (
            "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers\nbuilt with gcc 12",
            "5.1.6-0+deb12u1",
        ),
        ("ffmpeg version n7.0.2 Copyright (c) 2000-2024", "n7.0.2"),
        ("ffmpeg version 6.1\n", "6.1"),
        ("ffprobe version 5.1", None),
        ("", None),
    ],
)
def test_ffmpeg_version_parsing(output, version):
    """The version is what ffmpeg prints after "ffmpeg version "; other output has none."""
    assert parse_ffmpeg_version(output) == version


@pytest.mark.parametrize(
    "error,expected",
    [
        (
            ConnectionError("cannot reach redis://:hunter22@cache:6379/0"),
            "ConnectionError: cannot reach redis://cache:6379/0",
        ),
        ("failed for postgresql+psycopg://app:hunter22@db:5432/app", "failed for postgresql+psycopg://db:5432/app"),
        ("line one\nline two", "line one"),
        (TimeoutError(), "TimeoutError"),
        ("x" * 500, "x" * 197 + "..."),
    ],
)
def test_error_descriptions_are_short_and_scrubbed(error, expected):
    """Errors become one short line with URLs' userinfo removed."""
    assert describe_error(error) == expected


@pytest.mark.parametrize(
    "epoch,text",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1760956215.1234, "2025-10-20T10:30:15.123Z"),
    ],
)
def test_timestamps_are_utc_iso_with_milliseconds(epoch, text):
    """Report timestamps: ISO 8601, UTC, milliseconds, Z."""
    assert epoch_iso_utc(epoch) == text

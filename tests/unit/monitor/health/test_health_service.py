"""The health service (single-flight, cache, background refresh, containment), its endpoints, metrics and secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otel_monitor.instrument.publish_stamp import PUBLISHED_AT_HEADER, published_at_stamper
from otel_monitor.monitor.health.checks import FfmpegCheck, checks_from_config
from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.monitor.health.metrics import HealthMetricNames
from otel_monitor.monitor.health.router import build_health_router
from otel_monitor.monitor.health.service import HealthService
from otel_monitor.redaction.scrubber import SecretScrubber
from otel_monitor.testing import CapturedTelemetry, in_memory_telemetry
from tools.devstack import free_port

GB = 1024**3


class FakeClock:
    def __init__(self, now: float = 1_760_956_215.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeCheck:
    """A check that counts its runs and returns what it is told (after ``delay`` seconds, or raises ``error``)."""

    def __init__(self, name: str, result: dict | None = None, *, delay: float = 0.0, error: Exception | None = None):
        self.name = name
        self.result = result or {"status": "healthy"}
        self.delay = delay
        self.error = error
        self.runs = 0

    async def run(self) -> dict:
        self.runs += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return dict(self.result)

    def failed(self, error: str) -> dict:
        return {"status": "unhealthy", "value": None, "error": error}


def test_concurrent_requests_on_a_cold_cache_run_each_check_once():
    """N concurrent report() calls on a cold cache share one run: each check runs once, all get the same report."""
    checks = [FakeCheck("a", delay=0.05), FakeCheck("b", delay=0.01)]
    service = HealthService(checks, timeout=1.0, ttl=300, clock=FakeClock())

    async def many():
        return await asyncio.gather(*(service.report() for _ in range(50)))

    reports = asyncio.run(many())
    assert [check.runs for check in checks] == [1, 1]
    assert all(report is reports[0] for report in reports)


def test_a_caller_giving_up_does_not_cancel_the_shared_run():
    """A request cancelled mid-run (client gone) leaves the run going for the others."""
    check = FakeCheck("a", delay=0.05)
    service = HealthService([check], timeout=1.0, ttl=300, clock=FakeClock())

    async def scenario():
        impatient = asyncio.ensure_future(service.report())
        patient = asyncio.ensure_future(service.report())
        await asyncio.sleep(0.01)
        impatient.cancel()
        return await patient

    assert asyncio.run(scenario())["status"] == "healthy"
    assert check.runs == 1


@pytest.mark.parametrize("advance,runs", [(0, 1), (299.9, 1), (300, 2), (1000, 2)])
def test_the_report_is_cached_for_ttl(advance, runs):
    """report() answers from the cache while it is younger than ttl; once older, it still answers at once with the
    cached report and starts a refresh in the background, whose report the next request gets."""
    clock = FakeClock()
    check = FakeCheck("a")
    service = HealthService([check], timeout=1.0, ttl=300, clock=clock)

    async def three_times():
        first = await service.report()
        clock.now += advance
        second = await service.report()
        await asyncio.sleep(0.05)  # the background refresh, if one started, completes
        return first, second, await service.report()

    first, second, third = asyncio.run(three_times())
    assert second is first  # never waits on the checks once a report exists
    assert check.runs == runs
    assert (third is first) is (runs == 1)


def test_background_refresh_runs_every_ttl_until_stopped():
    """start() refreshes now and then every ttl (the injected sleep is where time passes); report() stays cached."""
    clock = FakeClock()
    check = FakeCheck("a")
    sleeping: list[tuple[float, asyncio.Future]] = []

    async def fake_sleep(seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        sleeping.append((seconds, wake))
        await wake

    async def until_asleep() -> float:
        while not sleeping:
            await asyncio.sleep(0)
        return sleeping[0][0]

    def let_time_pass() -> None:
        seconds, wake = sleeping.pop(0)
        clock.now += seconds
        wake.set_result(None)

    service = HealthService([check], timeout=1.0, ttl=300, clock=clock, sleep=fake_sleep)

    async def scenario() -> list[tuple[int, float]]:
        seen = []
        await service.start()
        for _ in range(3):
            slept = await until_asleep()
            cached = await service.report()
            assert cached is service.last_report  # fresh from the background: no run for the request
            seen.append((check.runs, slept))
            let_time_pass()
        await until_asleep()
        await service.stop()
        for _ in range(10):
            await asyncio.sleep(0)
        seen.append((check.runs, 0.0))
        return seen

    assert asyncio.run(scenario()) == [(1, 300), (2, 300), (3, 300), (4, 0.0)]


def test_stop_ends_a_run_in_progress():
    """stop() at shutdown cancels the background task and a run still waiting on a dependency."""
    check = FakeCheck("a", delay=30)
    service = HealthService([check], timeout=60, ttl=300, clock=FakeClock())

    async def scenario():
        await service.start()
        while check.runs == 0:
            await asyncio.sleep(0)
        await asyncio.wait_for(service.stop(), 5)

    asyncio.run(scenario())
    assert service.last_report is None


@pytest.mark.parametrize(
    "check,error",
    [
        (FakeCheck("a", error=RuntimeError("boom")), "check failed: RuntimeError: boom"),
        (FakeCheck("a", delay=30), "timed out after 0.1 s"),
        (FakeCheck("a", {"status": "fine"}), "check returned status 'fine'"),
    ],
)
def test_a_failing_check_is_unhealthy_and_never_raises(check, error):
    """A check that raises, hangs or answers nonsense is unhealthy in its own shape; the others still report."""
    other = FakeCheck("b")
    report = asyncio.run(HealthService([check, other], timeout=0.1, ttl=300, clock=FakeClock()).refresh())
    assert report["checks"]["a"] == {"status": "unhealthy", "value": None, "error": error}
    assert report["checks"]["b"] == {"status": "healthy"}
    assert report["status"] == "unhealthy"
    assert report["timestamp"] == "2025-10-20T10:30:15.000Z"


def test_duplicate_check_names_are_refused():
    """Two checks of one name would overwrite each other in the report: refused at construction."""
    with pytest.raises(ValueError, match="repeated"):
        HealthService([FakeCheck("a"), FakeCheck("a")], timeout=1, ttl=1)


def test_status_changes_are_logged_once(caplog):
    """A check turning unhealthy logs one ERROR with the required error code, not one per run; recovery logs INFO."""
    check = FakeCheck("redis", {"status": "unhealthy", "error": "down"})
    check.error_code = SimpleNamespace(value="REDIS_CONNECTION_FAILED")
    service = HealthService([check], timeout=1.0, ttl=300, clock=FakeClock())
    caplog.set_level(logging.INFO, logger="otel_monitor.health")
    asyncio.run(service.refresh())
    asyncio.run(service.refresh())
    check.result = {"status": "healthy"}
    asyncio.run(service.refresh())
    records = [r for r in caplog.records if r.name == "otel_monitor.health"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("ERROR", "Health check redis unhealthy"),
        ("INFO", "Health check redis recovered"),
    ]
    assert records[0].error_code == "REDIS_CONNECTION_FAILED" and records[0].error == "down"


def _app(service: HealthService) -> TestClient:
    app = FastAPI()
    app.include_router(build_health_router(service))
    return TestClient(app)


@pytest.mark.parametrize(
    "statuses,code,overall",
    [
        (["healthy", "healthy"], 200, "healthy"),
        (["healthy", "degraded"], 200, "degraded"),
        (["degraded", "unhealthy"], 503, "unhealthy"),
    ],
)
def test_health_endpoint_status_codes(statuses, code, overall):
    """GET /api/v1/system/health: the report as JSON, 200 healthy/degraded, 503 unhealthy, never cached by proxies."""
    checks = [FakeCheck(f"c{i}", {"status": s}) for i, s in enumerate(statuses)]
    response = _app(HealthService(checks, timeout=1, ttl=300)).get("/api/v1/system/health")
    assert response.status_code == code
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == overall and set(body) == {"status", "timestamp", "checks"}
    assert body["timestamp"].endswith("Z") and len(body["timestamp"]) == len("2025-10-20T10:30:15.123Z")


@pytest.mark.parametrize(
    "statuses,code,ietf",
    [
        (["healthy"], 200, "pass"),
        (["degraded"], 200, "warn"),
        (["unhealthy"], 503, "fail"),
    ],
)
def test_health_endpoint_answers_health_json_when_asked(statuses, code, ietf):
    """With Accept: application/health+json the IETF format comes back, typed so, with the same status codes."""
    checks = [FakeCheck("database", {"status": statuses[0], "latency_ms": 2.5})]
    response = _app(HealthService(checks, timeout=1, ttl=300)).get(
        "/api/v1/system/health", headers={"Accept": "application/health+json"}
    )
    assert response.status_code == code
    assert response.headers["content-type"] == "application/health+json"
    body = response.json()
    assert body["status"] == ietf
    assert body["checks"]["database:responseTime"][0]["observedValue"] == 2.5


def test_liveness_depends_on_nothing_external():
    """GET /livez answers 200 {"status": "ok"} without running any check, even while every check would hang."""
    check = FakeCheck("database", delay=30)
    response = _app(HealthService([check], timeout=1, ttl=300)).get("/livez")
    assert (response.status_code, response.json(), check.runs) == (200, {"status": "ok"}, 0)


def _points(captured: CapturedTelemetry) -> dict[tuple[str, str | None], float]:
    """{(instrument name, check label): value} of one collection, without the host's CPU and memory (live
    readings, tested in test_health_system_metrics.py)."""
    host = {HealthMetricNames.CPU_USAGE_RATIO, HealthMetricNames.MEMORY_USAGE_RATIO}
    return {
        (point.name, point.labels.get("check")): point.value for point in captured.collect() if point.name not in host
    }


def test_metrics_carry_the_last_report():
    """Gauges: up and status per check and overall, latency in seconds, disk bytes and ratio, Celery queue, workers."""
    captured = in_memory_telemetry()
    checks = [
        FakeCheck("database", {"status": "healthy", "latency_ms": 12.5}),
        FakeCheck("redis", {"status": "unhealthy", "latency_ms": None, "error": "down"}),
        FakeCheck("celery", {"status": "degraded", "active_workers": 3, "pending_tasks": 60}),
        FakeCheck("disk", {"status": "healthy", "free_gb": 40.0, "total_gb": 100.0, "percentage_used": 60.0}),
    ]
    service = HealthService(checks, timeout=1, ttl=300, meter_provider=captured.meter_provider)
    assert _points(captured) == {}  # nothing observed before the first report
    asyncio.run(service.refresh())
    names = HealthMetricNames
    assert _points(captured) == {
        (names.UP, "overall"): 0,
        (names.UP, "database"): 1,
        (names.UP, "redis"): 0,
        (names.UP, "celery"): 1,
        (names.UP, "disk"): 1,
        (names.STATUS, "overall"): 2,
        (names.STATUS, "database"): 0,
        (names.STATUS, "redis"): 2,
        (names.STATUS, "celery"): 1,
        (names.STATUS, "disk"): 0,
        (names.LATENCY, "database"): 0.0125,
        (names.DISK_FREE, None): 40 * GB,
        (names.DISK_TOTAL, None): 100 * GB,
        (names.DISK_FREE_RATIO, None): 0.4,
        (names.CELERY_QUEUE_LENGTH, None): 60,
        (names.CELERY_WORKERS, None): 3,
    }


def test_credentials_never_reach_the_response_or_the_logs(caplog):
    """A DSN and Redis URLs with passwords, all unreachable, and errors quoting them: no password or userinfo leaks."""
    db_password, redis_password = "Db-pa55word-7781", "Rd-pa55word-9932"
    port = free_port()  # nothing listens: connection refused
    dsn = f"postgresql+psycopg://monitor:{db_password}@127.0.0.1:{port}/video"
    redis_url = f"redis://default:{redis_password}@127.0.0.1:{port}/0"
    config = HealthConfig(
        database_url=dsn, redis_url=redis_url, celery_broker_url=f"redis://:{redis_password}@127.0.0.1:{port}/1"
    )
    scrubber = SecretScrubber()
    checks = checks_from_config(
        config, scrubber=scrubber, disk_usage_reader=lambda _p: SimpleNamespace(total=GB, free=GB // 2)
    )
    # Libraries that quote their URL or password in errors (SQLAlchemy, some drivers) are covered too.
    checks += [
        FakeCheck("quoting_driver", error=ConnectionError(f"{dsn} refused; password was {db_password}")),
        FakeCheck("quoting_result", {"status": "degraded", "error": f"slow {redis_url}"}),
    ]
    # a generous timeout: ffmpeg's check runs the real binary, which a loaded host can take over a second to start
    service = HealthService(checks, timeout=10.0, ttl=300, scrubber=scrubber)
    caplog.set_level(logging.DEBUG)
    client = _app(service)
    plain = client.get("/api/v1/system/health")
    ietf = client.get("/api/v1/system/health", headers={"Accept": "application/health+json"})
    assert plain.status_code == ietf.status_code == 503
    statuses = {name: check["status"] for name, check in plain.json()["checks"].items()}
    assert statuses == {
        "database": "unhealthy",
        "redis": "unhealthy",
        "celery": "unhealthy",
        "disk": "healthy",
        "ffmpeg": "healthy",
        "quoting_driver": "unhealthy",
        "quoting_result": "degraded",
    }
    assert plain.json()["checks"]["quoting_driver"]["error"].endswith("password was REDACTED")
    logged = " ".join(f"{record.getMessage()} {json.dumps(record.__dict__, default=str)}" for record in caplog.records)
    assert "Health check database unhealthy" in logged and f"127.0.0.1:{port}" in logged
    for text in (plain.text, ietf.text, logged):
        for secret in (db_password, redis_password, "monitor:", "default:"):
            assert secret not in text


@pytest.mark.parametrize(
    "binary,path",
    [
        ("ffmpeg-not-installed", None),
        ("ffmpeg", "/nonexistent"),
        ("/bin/false", None),
        ("/bin/true", None),
    ],
)
def test_ffmpeg_missing_or_failing_is_unhealthy(monkeypatch, binary, path):
    """ffmpeg absent (unknown name, or not on PATH), exiting non-zero or printing no version: unhealthy."""
    if path is not None:
        monkeypatch.setenv("PATH", path)
    result = asyncio.run(FfmpegCheck(binary).run())
    assert result["status"] == "unhealthy" and result["version"] is None and result["error"]


def test_ffmpeg_present_reports_its_version():
    """The installed ffmpeg is healthy and its version is what it prints after "ffmpeg version "."""
    result = asyncio.run(FfmpegCheck("ffmpeg").run())
    assert result["status"] == "healthy" and result["version"][0].isdigit()


def test_unconfigured_dependencies_are_not_checked():
    """A config without database, Redis or broker URL checks only the disk and FFmpeg."""
    report = asyncio.run(HealthService.from_config(HealthConfig()).refresh())
    assert list(report["checks"]) == ["disk", "ffmpeg"]


def test_publish_stamp_sets_the_header():
    """The before_task_publish receiver stamps (and re-stamps) the publish time into the message headers."""
    headers = {"id": "1", PUBLISHED_AT_HEADER: 1.0}
    published_at_stamper(lambda: time.time() - 5)(headers=headers, body=(), sender="video.generate")
    assert time.time() - 6 < headers[PUBLISHED_AT_HEADER] < time.time() - 4


@pytest.mark.parametrize("advance,runs", [(0, 1), (4.9, 1), (5, 2), (60, 2)])
def test_fresh_report_runs_the_checks_when_older_than_max_age(advance, runs):
    """fresh_report(max_age) answers the cached report while younger than max_age, else waits for a new run:
    the alert rules see a dependency die within their interval, whatever the endpoint's TTL."""
    clock = FakeClock()
    check = FakeCheck("a")
    service = HealthService([check], timeout=1.0, ttl=300, clock=clock)

    async def twice():
        first = await service.report()
        clock.now += advance
        return first, await service.fresh_report(max_age=5)

    first, second = asyncio.run(twice())
    assert check.runs == runs
    assert (second is first) is (runs == 1)


@pytest.mark.parametrize(
    ("timings", "expected", "probes"),
    [
        ([20.0], 20.0, 1),  # fast: measured once
        ([150.0, 20.0], 20.0, 2),  # one slow round trip (this process held it up): measured again, the faster kept
        ([150.0, 160.0], 150.0, 2),  # slow twice: the dependency is slow, and the check says degraded
    ],
)
@pytest.mark.asyncio
async def test_a_slow_round_trip_is_measured_again_before_it_degrades(timings, expected, probes):
    """A latency over the degraded threshold is confirmed by a second probe; the faster of the two is reported."""
    from otel_monitor.monitor.health.checks.base import confirmed_latency_ms

    calls = iter(timings)
    made = []

    async def probe() -> float:
        made.append(1)
        return next(calls)

    assert await confirmed_latency_ms(probe, 100.0) == expected
    assert len(made) == probes

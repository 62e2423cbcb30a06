"""The health checks against real PostgreSQL, Redis, a Celery prefork worker of the demo app and ffmpeg."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import redis
from celery import Celery
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otel_monitor.instrument.publish_stamp import PUBLISHED_AT_HEADER
from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.monitor.health.router import build_health_router
from otel_monitor.monitor.health.service import HealthService
from tests.support.health import LATENCY_NOT_JUDGED
from tests.support.stacks import private_stack
from tools.devstack import ManagedProcess, free_port, wait_until
from tools.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.stack

GB = 1024**3
PLENTY_OF_DISK = SimpleNamespace(total=100 * GB, free=60 * GB)


class FakeClock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def deps():
    """PostgreSQL and Redis on free ports."""
    with private_stack("otel-monitor-health-", "redis", "postgres") as stack:
        yield stack


def _ping_workers(broker_url: str, name: str) -> bool:
    app = Celery("health-test-probe", broker=broker_url, set_as_current=False)
    return any(name in reply for reply in app.control.ping(timeout=0.5))


@pytest.fixture(scope="module")
def worker(deps):
    """A prefork worker of the demo app (one child) consuming the default queue ``celery`` of the Redis broker."""
    name = f"health-{os.getpid()}@{socket.gethostname()}"
    workdir = Path(deps.workdir)
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "examples.demo_backend.tasks",
        "worker",
        "--loglevel=INFO",
        "--pool=prefork",
        "--concurrency=1",
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "-Q",
        "celery",
    ]
    env = {
        "PYTHONPATH": str(REPO_ROOT),
        "DEMO_REDIS_URL": deps.redis_url,
        "DEMO_WORK_DIR": str(workdir / "videos"),
        # nothing listens there: telemetry export fails fast, the worker is what is under test
        "OTEL_MONITOR_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_MONITOR_EXPORT_TIMEOUT_SECONDS": "0.5",
        "OTEL_MONITOR_EXPORT_LOGS": "false",
        "OTEL_MONITOR_LOG_DIR": str(workdir / "worker-logs"),
    }
    process = ManagedProcess(
        "health-worker",
        argv,
        workdir / "health-worker.out",
        env=env,
        cwd=REPO_ROOT,
        ready=lambda: _ping_workers(deps.redis_url, name),
        start_timeout=60,
    ).start()
    yield process
    _continue(process)
    process.stop(timeout=30)


def _children(process: ManagedProcess) -> list[psutil.Process]:
    return psutil.Process(process.process.pid).children(recursive=True)


def _continue(process: ManagedProcess) -> None:
    for child in _children(process):
        child.send_signal(signal.SIGCONT)


def _config(**overrides) -> HealthConfig:
    # A generous timeout where the test is not about timing: this machine may be busy with other tests.
    return HealthConfig(
        **{"check_timeout_seconds": 3.0, "celery_inspect_timeout_seconds": 0.5, **LATENCY_NOT_JUDGED, **overrides}
    )


def _service(config: HealthConfig, **kwargs) -> HealthService:
    return HealthService.from_config(config, disk_usage_reader=lambda _path: PLENTY_OF_DISK, **kwargs)


@pytest.fixture(scope="module")
def healthy_report(deps, worker):
    """One report with every dependency up."""
    redis.Redis.from_url(deps.redis_url).delete("celery")
    config = _config(
        database_url=deps.postgres_url,
        redis_url=deps.redis_url,
        celery_broker_url=deps.redis_url,
        ffmpeg_binary="/usr/bin/ffmpeg",
    )
    return asyncio.run(HealthService.from_config(config).refresh())


@pytest.mark.parametrize(
    "check,fields",
    [
        ("database", {"status", "latency_ms"}),
        ("redis", {"status", "latency_ms"}),
        ("celery", {"status", "active_workers", "pending_tasks"}),
        ("disk", {"status", "free_gb", "total_gb", "percentage_used"}),
        ("ffmpeg", {"status", "version"}),
    ],
)
def test_each_check_reports_its_dependency_up(healthy_report, check, fields):
    """Against real servers each check is healthy (disk: not unhealthy) and has exactly the required fields."""
    result = healthy_report["checks"][check]
    assert set(result) == fields, result
    expected = {"healthy", "degraded"} if check == "disk" else {"healthy"}  # the machine's own disk
    assert result["status"] in expected, result


def test_healthy_report_values(healthy_report):
    """The values are real measurements: latencies, one worker, an empty queue, ffmpeg's version string."""
    checks = healthy_report["checks"]
    assert checks["database"]["latency_ms"] > 0 and checks["redis"]["latency_ms"] > 0
    assert checks["celery"]["active_workers"] == 1 and checks["celery"]["pending_tasks"] == 0
    assert checks["ffmpeg"]["version"][0].isdigit()
    assert checks["disk"]["total_gb"] > checks["disk"]["free_gb"] > 0


def test_redis_stopped_makes_the_endpoint_answer_503(own_redis):
    """Redis up: 200 and healthy; Redis stopped: once the cache expires, redis is unhealthy and the endpoint 503."""
    clock = FakeClock()
    service = _service(_config(redis_url=own_redis.redis_url, cache_ttl_seconds=300), clock=clock)
    app = FastAPI()
    app.include_router(build_health_router(service))
    with TestClient(app) as client:
        up = client.get("/api/v1/system/health")
        assert up.status_code == 200, up.text
        assert up.json()["checks"]["redis"]["status"] == "healthy"
        own_redis["redis"].stop()
        assert client.get("/api/v1/system/health").status_code == 200  # still the cached report
        clock.now += 301
        assert client.get("/api/v1/system/health").status_code == 200  # stale, while the refresh runs
        down = wait_until(
            lambda: (r := client.get("/api/v1/system/health")).status_code == 503 and r,
            10,
            interval=0.05,
            what="the refreshed report",
        )
    assert down.status_code == 503, down.text
    assert down.json()["status"] == "unhealthy"
    assert down.json()["checks"]["redis"]["status"] == "unhealthy"
    assert down.json()["checks"]["redis"]["error"]


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    "check,config_key,url",
    [
        ("database", "database_url", "postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"),
        ("redis", "redis_url", "redis://127.0.0.1:{port}/0"),
        ("celery", "celery_broker_url", "redis://127.0.0.1:{port}/0"),
    ],
)
def test_a_dependency_that_never_answers_is_unhealthy_within_the_timeout(silent_port, check, config_key, url):
    """A dependency that accepts and never answers: that check unhealthy, "timed out after 1.0 s", report in time."""
    service = _service(_config(**{config_key: url.format(port=silent_port), "check_timeout_seconds": 1.0}))
    started = time.monotonic()
    report = asyncio.run(service.refresh())
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 2.0, elapsed
    assert report["status"] == "unhealthy"
    assert report["checks"][check]["status"] == "unhealthy"
    assert report["checks"][check]["error"] == "timed out after 1.0 s"
    assert report["checks"]["ffmpeg"]["status"] == "healthy"  # the others still ran


def test_no_worker_makes_celery_unhealthy(own_redis):
    """A reachable broker no worker listens on: celery unhealthy, no active worker."""
    report = asyncio.run(_service(_config(celery_broker_url=own_redis.redis_url)).refresh())
    celery = report["checks"]["celery"]
    assert celery["status"] == "unhealthy"
    assert celery["active_workers"] == 0 and celery["pending_tasks"] == 0
    assert "no worker answered" in celery["error"]


def _send(broker_url: str, queue: str, **options) -> None:
    app = Celery("health-test-producer", broker=broker_url, set_as_current=False)
    app.send_task("video.generate", args=["health-test", "stall"], kwargs={"steps": []}, queue=queue, **options)


def test_a_queue_no_worker_consumes_stalls(deps, worker):
    """Workers answer but none consumes the queue and its oldest message (stamped at publish) is too old."""
    queue = "video-unconsumed"
    broker = redis.Redis.from_url(deps.redis_url)
    broker.delete(queue)
    _send(deps.redis_url, queue, headers={PUBLISHED_AT_HEADER: time.time() - 60})
    config = _config(celery_broker_url=deps.redis_url, celery_queues=[queue], celery_stall_seconds=30)
    report = asyncio.run(_service(config).refresh())
    broker.delete(queue)
    celery = report["checks"]["celery"]
    assert celery["status"] == "unhealthy"
    assert celery["pending_tasks"] == 1 and celery["active_workers"] == 0
    assert f"no worker consumes {queue}" in celery["error"]
    assert f"queue {queue} stalled" in celery["error"]


def test_a_worker_that_stops_consuming_stalls_its_queue(deps, worker):
    """Workers answer and consume the queue, but its child hangs: the unstamped head message ages into a stall."""
    broker = redis.Redis.from_url(deps.redis_url)
    broker.delete("celery")
    clock = FakeClock()
    service = _service(_config(celery_broker_url=deps.redis_url, celery_stall_seconds=30), clock=clock)
    children = _children(worker)
    for child in children:
        child.send_signal(signal.SIGSTOP)
    try:
        _send(deps.redis_url, "celery")  # taken by the worker (prefetch 1, acks late), stuck in the stopped child
        wait_until(lambda: broker.llen("celery") == 0, 10, what="the worker to take the first task")
        _send(deps.redis_url, "celery")  # left in the queue: the only child is busy
        first = asyncio.run(service.refresh())
        clock.now += 31
        later = asyncio.run(service.refresh())
    finally:
        for child in children:
            child.send_signal(signal.SIGCONT)
    assert first["checks"]["celery"] == {"status": "healthy", "active_workers": 1, "pending_tasks": 1}
    assert later["checks"]["celery"]["status"] == "unhealthy"
    assert "queue celery stalled" in later["checks"]["celery"]["error"]
    wait_until(lambda: broker.llen("celery") == 0, 20, what="the worker to resume")

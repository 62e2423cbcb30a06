"""A quota database that never answers holds only the quota store's threads: health still answers, quota says 503."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from otel_monitor.blocking_calls import BlockingExecutor, ExecutorBusyError
from otel_monitor.health.config import HealthConfig
from otel_monitor.health.probes import HEALTH_PATH
from otel_monitor.monitor_app import create_app
from otel_monitor.monitor_config import MonitorConfig
from otel_monitor.quota.config import QuotaConfig
from otel_monitor.quota.router import QUOTA_PATH
from tests.support.backends import blackhole_server

CHECK_TIMEOUT = 1.0
# More quota requests than the event loop's default executor has threads (min(32, CPUs + 4)): without a pool of
# its own, the store's calls would take every one of them.
FLOOD = min(32, (os.cpu_count() or 1) + 4) + 8
# A quota request waits at most for a thread (the store's 5 s connect timeout), then for the calls ahead of it on
# the store's two threads (5 s each): well under this.
QUOTA_ANSWER_BOUND = 30.0


class _ServedApp:
    """The app served by uvicorn on a free port, in a thread with its own event loop (as `otel-monitor serve`)."""

    def __init__(self, app) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_config=None))
        self.thread = threading.Thread(target=self.server.run, name="served-monitor", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the monitor did not start"
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture
def hole():
    sock = blackhole_server()
    yield sock.getsockname()[1]
    sock.close()


def _timed_get(url: str, timeout: float) -> tuple[float, httpx.Response | None]:
    started = time.monotonic()
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.TimeoutException:
        response = None
    return time.monotonic() - started, response


def test_a_hanging_quota_database_starves_neither_health_nor_the_quota_endpoint(hole):
    """With the quota store on a database that accepts connections and never answers and many quota requests in
    flight, health answers within the check timeout + 1 s with its disk check run (not timed out), and every quota
    request answers 503 naming the store."""
    config = MonitorConfig(
        health=HealthConfig(check_timeout_seconds=CHECK_TIMEOUT, cache_ttl_seconds=0.3),
        quota=QuotaConfig(store_url=f"postgresql+psycopg://monitor:secret@127.0.0.1:{hole}/quota", redis_url=None,
                          poll=False))
    with _ServedApp(create_app(config)) as base_url, ThreadPoolExecutor(FLOOD) as clients:
        quota = [clients.submit(_timed_get, base_url + QUOTA_PATH, QUOTA_ANSWER_BOUND) for _ in range(FLOOD)]
        time.sleep(1.0)  # every quota request is in the store's hands by now
        health = []
        for _ in range(12):  # the reports of several refreshes during the flood (TTL 0.3 s)
            health.append(_timed_get(base_url + HEALTH_PATH, CHECK_TIMEOUT + 1))
            time.sleep(0.25)
        quota_answers = [future.result() for future in quota]

    for elapsed, response in health:
        assert response is not None and elapsed < CHECK_TIMEOUT + 1
    disk = health[-1][1].json()["checks"]["disk"]
    assert disk["status"] in ("healthy", "degraded") and "timed out" not in str(disk), disk  # it ran
    for elapsed, response in quota_answers:
        assert response is not None, f"no quota answer within {QUOTA_ANSWER_BOUND} s"
        assert response.status_code == 503
        assert response.json()["store"] == f"postgresql+psycopg://monitor:***@127.0.0.1:{hole}/quota"


@pytest.mark.parametrize("store", ["outbox", "alerts", "incidents", "digest"])
def test_an_alerting_store_on_a_database_that_never_answers_fails_instead_of_hanging(hole, store):
    """An alerting store on a PostgreSQL that accepts connections and never answers raises within its connect
    timeout (a call that hung would hold one of the store's two threads for good)."""
    from sqlalchemy.exc import OperationalError

    from otel_monitor.alerting.digest import DigestStore
    from otel_monitor.alerting.incidents import IncidentStore
    from otel_monitor.alerting.outbox import Outbox
    from otel_monitor.alerting.state import AlertStore
    from otel_monitor.store_types import POSTGRES_CONNECT_TIMEOUT_SECONDS

    kind, read = {"outbox": (Outbox, lambda s: s.entries()), "alerts": (AlertStore, lambda s: s.load_active()),
                  "incidents": (IncidentStore, lambda s: s.incidents()), "digest": (DigestStore, lambda s: s.count())
                  }[store]
    outcome: list[BaseException] = []

    def first_call() -> None:
        try:
            read(kind(f"postgresql+psycopg://monitor:secret@127.0.0.1:{hole}/alerts"))
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome.append(exc)

    caller = threading.Thread(target=first_call, daemon=True)
    caller.start()
    caller.join(POSTGRES_CONNECT_TIMEOUT_SECONDS + 10)
    assert not caller.is_alive(), "the store's first call still hangs"
    assert len(outcome) == 1 and isinstance(outcome[0], OperationalError), outcome
    assert "secret" not in str(outcome[0])


@pytest.mark.asyncio
async def test_a_call_that_finds_no_free_thread_in_time_is_not_run():
    """Behind a call holding the only thread, a call raises the busy error after the start timeout and never runs;
    the held call still finishes."""
    started, release, ran = threading.Event(), threading.Event(), []

    def hold() -> bool:
        started.set()
        return release.wait(10)

    executor = BlockingExecutor("test-blocking", max_workers=1, start_timeout=0.2)
    try:
        held = asyncio.ensure_future(executor.run(hold))
        await asyncio.to_thread(started.wait, 5)
        with pytest.raises(ExecutorBusyError, match="no free thread of test-blocking within 0.2 s"):
            await executor.run(ran.append, "queued")
        release.set()
        assert await held is True
        assert ran == []
    finally:
        executor.shutdown()

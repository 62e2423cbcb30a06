"""A database that never answers holds only its store's threads: health still answers, quota says 503, the services
stop promptly and the process exits."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from otel_monitor.instrument.probe_paths import HEALTH_PATH
from otel_monitor.monitor.app import create_app
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.monitor.quota.config import QuotaConfig
from otel_monitor.monitor.quota.reset_schedule import ResetRule
from otel_monitor.monitor.quota.router import QUOTA_PATH
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.quota.store import QuotaStore
from otel_monitor.monitor.quota.testing import FixedQuotaSource
from otel_monitor.monitor.store.blocking_calls import CLOSE_WAIT_SECONDS, BlockingExecutor, ExecutorBusyError
from tests.support.backends import blackhole_server, fresh_postgres_database
from tests.support.paths import REPO_ROOT
from tests.support.served_app import ServedApp
from tests.support.stacks import private_stack

CHECK_TIMEOUT = 1.0
# More quota requests than the event loop's default executor has threads (min(32, CPUs + 4)): without a pool of
# its own, the store's calls would take every one of them.
FLOOD = min(32, (os.cpu_count() or 1) + 4) + 8
# A quota request waits at most for a thread (the store's 5 s thread wait), then for the calls ahead of it on
# the store's two threads (5 s each): well under this.
QUOTA_ANSWER_BOUND = 30.0
# A health request answers within the check timeout; the margin is for a 2-core machine busy with the flood.
HEALTH_ANSWER_BOUND = CHECK_TIMEOUT + 4
# A process whose main ended exits within this, whatever its stores' threads are doing.
EXIT_BOUND = 20.0
REPO = REPO_ROOT


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
    flight, every health report answers with its disk check run (not timed out), and every quota request answers
    503 naming the store."""
    config = MonitorConfig(
        health=HealthConfig(check_timeout_seconds=CHECK_TIMEOUT, cache_ttl_seconds=0.3),
        quota=QuotaConfig(
            store_url=f"postgresql+psycopg://monitor:secret@127.0.0.1:{hole}/quota", redis_url=None, poll=False
        ),
    )
    with ServedApp(create_app(config)) as base_url, ThreadPoolExecutor(FLOOD) as clients:
        quota = [clients.submit(_timed_get, base_url + QUOTA_PATH, QUOTA_ANSWER_BOUND) for _ in range(FLOOD)]
        time.sleep(1.0)  # every quota request is in the store's hands by now
        health = []
        for _ in range(12):  # the reports of several refreshes during the flood (TTL 0.3 s)
            health.append(_timed_get(base_url + HEALTH_PATH, HEALTH_ANSWER_BOUND))
            time.sleep(0.25)
        quota_answers = [future.result() for future in quota]

    for _elapsed, response in health:
        assert response is not None, f"no health answer within {HEALTH_ANSWER_BOUND} s"
        disk = response.json()["checks"]["disk"]
        assert disk["status"] in ("healthy", "degraded") and "timed out" not in str(disk), disk  # it ran
    for _elapsed, response in quota_answers:
        assert response is not None, f"no quota answer within {QUOTA_ANSWER_BOUND} s"
        assert response.status_code == 503
        assert response.json()["store"] == f"postgresql+psycopg://monitor:***@127.0.0.1:{hole}/quota"


@pytest.mark.parametrize("store", ["outbox", "alerts", "incidents", "digest"])
def test_an_alerting_store_on_a_database_that_never_answers_fails_instead_of_hanging(hole, store):
    """An alerting store on a PostgreSQL that accepts connections and never answers raises within its connect
    timeout (a call that hung would hold one of the store's two threads for good)."""
    from sqlalchemy.exc import OperationalError

    from otel_monitor.monitor.alerting.delivery.digest import DigestStore
    from otel_monitor.monitor.alerting.delivery.outbox import Outbox
    from otel_monitor.monitor.alerting.incidents import IncidentStore
    from otel_monitor.monitor.alerting.state import AlertStore
    from otel_monitor.monitor.store.engine import POSTGRES_CONNECT_TIMEOUT_SECONDS

    kind, read = {
        "outbox": (Outbox, lambda s: s.entries()),
        "alerts": (AlertStore, lambda s: s.load_active()),
        "incidents": (IncidentStore, lambda s: s.incidents()),
        "digest": (DigestStore, lambda s: s.count()),
    }[store]
    outcome: list[BaseException] = []

    def first_call() -> None:
        try:
            read(kind(f"postgresql+psycopg://monitor:secret@127.0.0.1:{hole}/alerts"))
        except BaseException as exc:
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


@pytest.mark.asyncio
async def test_calls_run_on_named_daemon_threads_in_the_callers_context():
    """A call runs on a daemon thread named after the executor and sees the caller's context variables; after
    shutdown the executor runs calls again on new threads."""
    request_id = contextvars.ContextVar("request_id", default=None)
    request_id.set("r-1")

    def where() -> tuple[str, bool, str | None]:
        thread = threading.current_thread()
        return thread.name, thread.daemon, request_id.get()

    executor = BlockingExecutor("test-named", max_workers=2)
    try:
        name, daemon, seen = await executor.run(where)
        assert name.startswith("test-named") and daemon and seen == "r-1"
        executor.shutdown()
        name, daemon, seen = await executor.run(where)
        assert name.startswith("test-named") and daemon and seen == "r-1"
    finally:
        executor.shutdown()


_EXITING_MAIN = """
import asyncio, threading
from otel_monitor.monitor.store.blocking_calls import BlockingExecutor

async def main():
    executor = BlockingExecutor("stuck-store", max_workers=1)
    started = threading.Event()

    def hang_forever():
        started.set()
        threading.Event().wait()

    asyncio.ensure_future(executor.run(hang_forever))
    await asyncio.to_thread(started.wait, 10)
    if {shut_down}:
        executor.shutdown()

asyncio.run(main())
print("main ended", flush=True)
"""


@pytest.mark.parametrize("shut_down", [False, True])
def test_a_process_exits_while_a_call_hangs_on_a_store_thread(shut_down):
    """A process whose main ends while one of its executor's calls hangs for good exits, executor shut down or
    not: interpreter exit does not wait for the executor's threads."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_EXITING_MAIN.format(shut_down=shut_down))],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=EXIT_BOUND,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the process did not exit within {EXIT_BOUND} s of its main ending: {expired.stdout!r}")
    assert done.returncode == 0 and done.stdout == "main ended\n", (done.stdout, done.stderr)


@pytest.fixture(scope="module")
def postgres():
    """A private PostgreSQL on a free port, for this module."""
    with private_stack("otel-monitor-blocking-pg-", "postgres") as stack:
        yield stack


async def _wait_for_lock_waiter(url: str, timeout: float = 30) -> None:
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as connection:
                waiting = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )
                ).scalar()
            if waiting:
                return
            assert time.monotonic() < deadline, "the store call never reached the database"
            await asyncio.sleep(0.1)
    finally:
        engine.dispose()


@pytest.mark.stack
@pytest.mark.asyncio
async def test_the_quota_service_stops_promptly_while_a_store_call_hangs_on_its_database(postgres):
    """With a quota store call waiting on its PostgreSQL for good (a table lock another session holds), stop()
    returns within the close wait and a margin, leaving the call behind."""
    url = fresh_postgres_database(postgres.postgres_url, "quota")
    service = QuotaService(QuotaStore(url), {"gemini": FixedQuotaSource("gemini", 10, 1000, ResetRule.daily())})
    await service.start()
    locker = create_engine(url)
    holder = locker.connect()
    stuck = None
    try:
        holder.execute(text("LOCK TABLE quota_usage IN ACCESS EXCLUSIVE MODE"))
        stuck = asyncio.ensure_future(
            service.store.executor.run(service.store.add, "gemini", 10, 1000, 1.0, dt.datetime.now(dt.UTC))
        )
        await _wait_for_lock_waiter(url)
        bound = CLOSE_WAIT_SECONDS + 5
        try:
            await asyncio.wait_for(service.stop(), bound)
        except TimeoutError:
            pytest.fail(f"stop() still waits for the store after {bound} s")
        assert not stuck.done()  # left behind, still waiting on the database
    finally:
        holder.rollback()  # the call goes on and ends on its own thread
        holder.close()
        locker.dispose()
        if stuck is not None:
            await asyncio.wait_for(stuck, 30)

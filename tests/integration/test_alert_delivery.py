"""The outbox and Dispatcher: retries with backoff, permanent failures, independent channels, restarts, SIGKILL, and
several Dispatchers sharing one store (SQLite file and the real PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import _SQLITE_BUSY_SECONDS, DeliveryStatus, Outbox
from otel_monitor.monitor.alerting.delivery.retry import RetryPolicy
from otel_monitor.monitor.alerting.model import AlertState
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers import WebhookNotifier, build_notifiers
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.store.engine import STORE_THREAD_WAIT_SECONDS
from otel_monitor.redaction.scrubber import SecretScrubber
from tests.support.alerts import make_alert
from tests.support.clocks import Clock
from tests.support.paths import REPO_ROOT
from tests.support.receivers import Receiver

T0 = dt.datetime(2025, 10, 20, 10, 30, tzinfo=dt.UTC)
HOOK_TOKEN = "hooktoken-secret-9876"


@pytest.fixture
def open_outbox():
    """Opens Outboxes for the test; closes them, and shuts their threads down, after it."""
    opened: list[Outbox] = []

    def open_(*args, **options) -> Outbox:
        opened.append(Outbox(*args, **options))
        return opened[-1]

    yield open_
    for outbox in opened:
        outbox.close()
        outbox.executor.shutdown()


def alerts(count: int):
    return [make_alert(fingerprint=f"fp{index:014d}", labels={"service": "gemini"}) for index in range(count)]


def hook(receiver: Receiver, name: str = "hook", timeout: float = 2.0) -> WebhookNotifier:
    return WebhookNotifier(name, f"{receiver.url}/hook/{HOOK_TOKEN}", timeout=timeout, scrubber=SecretScrubber())


def dispatcher(outbox: Outbox, notifiers: dict, clock: Clock, **options) -> Dispatcher:
    options.setdefault("retry", RetryPolicy(initial_backoff_seconds=1, max_backoff_seconds=8, max_age_seconds=60))
    return Dispatcher(outbox, notifiers, clock=clock, scrubber=SecretScrubber([HOOK_TOKEN]), **options)


@pytest.mark.parametrize(
    "first, second, added",
    [
        (("firing", ["a", "b"]), ("firing", ["a", "b"]), ()),
        (("firing", ["a"]), ("firing", ["a", "b"]), ("b",)),
        (("firing", ["a"]), ("resolved", ["a"]), ("a",)),
    ],
)
def test_enqueue_is_idempotent_per_channel(open_outbox, first, second, added):
    """One notification is queued at most once per channel; a different transition is a new notification."""
    outbox = open_outbox(clock=Clock(T0))
    alert = make_alert()
    outbox.enqueue(alert, first[0], first[1])
    second_alert = alert.with_state(AlertState.RESOLVED, ends_at=T0) if second[0] == "resolved" else alert
    assert outbox.enqueue(second_alert, second[0], second[1]) == added


def test_receiver_down_then_back_delivers_each_once(open_outbox, receiver):
    """A receiver down for a while then back gets every notification exactly once."""
    clock = Clock(T0)
    outbox = open_outbox(clock=clock)
    for alert in alerts(5):
        outbox.enqueue(alert, "firing", ["hook"])
    receiver.stop()
    run = dispatcher(outbox, {"hook": hook(receiver)}, clock)
    for _ in range(3):
        asyncio.run(run.run_once())
        clock.advance(10)
    assert len(outbox.entries(status=DeliveryStatus.PENDING)) == 5
    receiver.start()
    asyncio.run(run.run_once())
    clock.advance(10)
    asyncio.run(run.run_once())
    assert len(outbox.entries(status=DeliveryStatus.DELIVERED)) == 5
    assert sorted(receiver.ids()) == sorted(entry.notification.id for entry in outbox.entries())


@pytest.mark.parametrize("statuses", [[500, 500, 500], [429, 429, 429], [503, 429, 502]])
def test_retryable_statuses_back_off_exponentially(open_outbox, receiver, statuses):
    """429 and 5xx are retried after 1 s, 2 s, 4 s (injected clock); nothing is tried before it is due."""
    clock = Clock(T0)
    outbox = open_outbox(clock=clock)
    outbox.enqueue(make_alert(), "firing", ["hook"])
    receiver.statuses.extend(statuses)
    run = dispatcher(outbox, {"hook": hook(receiver)}, clock)
    for wait in (1, 2, 4):
        asyncio.run(run.run_once())
        (entry,) = outbox.entries()
        assert entry.status == DeliveryStatus.PENDING
        assert entry.next_attempt_at == clock.now + dt.timedelta(seconds=wait)
        clock.advance(wait - 0.5)
        asyncio.run(run.run_once())  # not due yet: no request
        clock.advance(0.5)
    asyncio.run(run.run_once())
    assert len(receiver.requests) == len(statuses) + 1
    assert outbox.entries()[0].status == DeliveryStatus.DELIVERED


@pytest.mark.parametrize("status", [400, 401, 404])
def test_other_4xx_is_permanent_and_reported(open_outbox, receiver, caplog, status):
    """Other 4xx fail at once, are never retried, and are reported at ERROR without the URL's token."""
    clock = Clock(T0)
    outbox = open_outbox(clock=clock)
    outbox.enqueue(make_alert(), "firing", ["hook"])
    receiver.status = status
    run = dispatcher(outbox, {"hook": hook(receiver)}, clock)
    with caplog.at_level(logging.WARNING):
        asyncio.run(run.run_once())
        clock.advance(3600)
        asyncio.run(run.run_once())
    assert len(receiver.requests) == 1
    (entry,) = outbox.entries()
    assert entry.status == DeliveryStatus.FAILED and entry.last_error.startswith(f"HTTP {status}")
    (record,) = [r for r in caplog.records if r.getMessage() == "Alert delivery failed"]
    assert (
        record.levelno == logging.ERROR and record.channel == "hook" and record.error_code == "GEMINI_INVALID_API_KEY"
    )
    assert HOOK_TOKEN not in entry.last_error and HOOK_TOKEN not in caplog.text


def test_retryable_failures_given_up_after_max_age(open_outbox, receiver, caplog):
    """A receiver failing with 5xx past the max age is given up and reported."""
    clock = Clock(T0)
    outbox = open_outbox(clock=clock)
    outbox.enqueue(make_alert(), "firing", ["hook"])
    receiver.status = 500
    run = dispatcher(outbox, {"hook": hook(receiver)}, clock)
    with caplog.at_level(logging.ERROR):
        for _ in range(20):
            asyncio.run(run.run_once())
            clock.advance(8)
    (entry,) = outbox.entries()
    assert entry.status == DeliveryStatus.GIVEN_UP
    assert [r.delivery_status for r in caplog.records if r.getMessage() == "Alert delivery failed"] == ["given_up"]
    assert HOOK_TOKEN not in caplog.text


def test_hanging_channel_never_delays_another(open_outbox):
    """While one channel hangs, the other channel's notification is delivered; the hung one times out and stays due."""
    fast, slow = Receiver().start(), Receiver().start()
    slow.hang = True
    outbox = open_outbox()
    config = DeliveryConfig.model_validate(
        {
            "channels": {
                "fast": {"type": "webhook", "url": f"{fast.url}/hook"},
                "slow": {"type": "webhook", "url": f"{slow.url}/hook", "timeout_seconds": 1.5},
            },
            "routing": {"P0": ["slow", "fast"]},
        }
    )
    outbox.enqueue(make_alert(), "firing", config.channels_for(make_alert().priority))

    async def scenario():
        stop = asyncio.Event()
        run = Dispatcher.from_config(
            outbox, config, build_notifiers(config, scrubber=SecretScrubber()), poll_interval=0.05
        )
        task = asyncio.create_task(run.run(stop))
        started = time.monotonic()
        while outbox.entries(channel="fast")[0].status != DeliveryStatus.DELIVERED and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        fast_after = time.monotonic() - started
        statuses = {e.channel: e.status for e in outbox.entries()}
        while outbox.entries(channel="slow")[0].last_error is None and time.monotonic() - started < 10:
            await asyncio.sleep(0.05)
        slow_after = time.monotonic() - started
        stop.set()
        await task
        return fast_after, slow_after, statuses

    try:
        fast_after, slow_after, statuses = asyncio.run(scenario())
    finally:
        fast.stop()
        slow.stop()
    assert fast_after < 1.0 and len(slow.requests) == 1
    assert statuses == {"fast": DeliveryStatus.DELIVERED, "slow": DeliveryStatus.PENDING}
    (slow_entry,) = outbox.entries(channel="slow")
    assert slow_entry.status == DeliveryStatus.PENDING and slow_entry.last_error == "timed out after 1.5s"
    assert 1.4 < slow_after < 4


class _SlowThreadStart:
    """The outbox's executor, each call first waiting ``seconds`` on the test clock for a free thread."""

    def __init__(self, executor, clock: Clock, seconds: float) -> None:
        self._executor = executor
        self._clock = clock
        self._seconds = seconds

    async def run(self, call, /, *args, **kwargs):
        self._clock.advance(self._seconds)
        return await self._executor.run(call, *args, **kwargs)


@pytest.mark.parametrize("thread_wait", [0, 20])
def test_lease_runs_from_the_claim_and_outlasts_a_store_wait(open_outbox, receiver, thread_wait):
    """A claim that waited for a store thread leases from when it claimed, for the channel timeout plus the waits
    of the result's write (a store thread, SQLite's lock): no second Dispatcher claims and sends it meanwhile."""
    clock = Clock(T0)
    outbox = open_outbox(clock=clock)
    outbox.enqueue(make_alert(), "firing", ["hook"])
    executor, outbox.executor = outbox.executor, _SlowThreadStart(outbox.executor, clock, thread_wait)
    run = dispatcher(outbox, {"hook": hook(receiver, timeout=2.0)}, clock, timeouts={"hook": 2.0})
    try:
        assert asyncio.run(run.deliver_due("hook")) == 1
    finally:
        outbox.executor = executor
    (entry,) = outbox.entries()
    claimed_at = T0 + dt.timedelta(seconds=thread_wait)
    assert entry.status == DeliveryStatus.DELIVERED
    assert entry.next_attempt_at == claimed_at + dt.timedelta(seconds=run.lease_seconds("hook"))
    # The result's write may wait for a store thread, then for SQLite's write lock, before the lease may run out.
    assert run.lease_seconds("hook") >= 2.0 + STORE_THREAD_WAIT_SECONDS + _SQLITE_BUSY_SECONDS


def test_restart_resumes_pending_and_sends_nothing_twice(open_outbox, receiver, tmp_path):
    """A new Outbox and Dispatcher on the same SQLite file deliver what was pending, and nothing delivered before."""
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    clock = Clock(T0)
    first = open_outbox(url, clock=clock)
    batch = alerts(4)
    for alert in batch[:2]:
        first.enqueue(alert, "firing", ["hook"])
    asyncio.run(dispatcher(first, {"hook": hook(receiver)}, clock).run_once())
    for alert in batch[2:]:
        first.enqueue(alert, "firing", ["hook"])
    # A crash between sending and recording: the claim is committed, the result never is.
    claimed = first.claim("hook", limit=1, lease_seconds=7)
    first.close()

    second = open_outbox(url, clock=clock)
    assert second.enqueue(batch[0], "firing", ["hook"]) == ()
    run = dispatcher(second, {"hook": hook(receiver)}, clock)
    asyncio.run(run.run_once())  # the claimed row waits out its lease; the other pending one goes now
    clock.advance(7)
    asyncio.run(run.run_once())
    assert {e.status for e in second.entries()} == {DeliveryStatus.DELIVERED}
    ids = receiver.ids()
    assert sorted(ids) == sorted(Notification.of(alert).id for alert in batch)
    assert claimed[0].attempts == 1 and second.entries()[2].attempts == 2


_CHILD = textwrap.dedent("""
    import asyncio, sys
    from otel_monitor.monitor.alerting.notifiers import WebhookNotifier
    from otel_monitor.monitor.alerting.delivery.outbox import Outbox
    from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
    from otel_monitor.redaction.scrubber import SecretScrubber

    outbox = Outbox(sys.argv[1])
    notifiers = {"hook": WebhookNotifier("hook", sys.argv[2], timeout=60, scrubber=SecretScrubber())}

    async def main():
        await Dispatcher(outbox, notifiers, concurrency={"hook": 1}, default_timeout=60,
                         poll_interval=0.05).run(asyncio.Event())

    asyncio.run(main())
""")


def test_sigkill_mid_delivery_loses_nothing_and_resends_at_most_once(open_outbox, receiver, tmp_path):
    """SIGKILL while a delivery is in flight: after restart every notification arrives, the cut one at most twice."""
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    outbox = open_outbox(url)
    batch = alerts(3)
    for alert in batch:
        outbox.enqueue(alert, "firing", ["hook"])
    outbox.close()
    receiver.statuses.extend([200])
    receiver.hang = False
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url, f"{receiver.url}/hook"], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 20
        while len(receiver.requests) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        receiver.hang = True  # the second delivery reaches the receiver and never gets its answer
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(receiver.requests) >= 2
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    receiver.release.set()
    receiver.hang = False

    clock = Clock(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120))  # past every lease
    resumed = open_outbox(url, clock=clock)
    asyncio.run(dispatcher(resumed, {"hook": hook(receiver)}, clock).run_once())
    assert {e.status for e in resumed.entries()} == {DeliveryStatus.DELIVERED}
    ids = receiver.ids()
    expected = {Notification.of(alert).id for alert in batch}
    assert set(ids) == expected
    assert max(ids.count(i) for i in expected) <= 2 and len(ids) <= len(expected) + 1


def test_two_dispatchers_on_one_store_deliver_each_row_once(open_outbox, receiver, store_url):
    """Two Dispatchers draining one outbox at once: each of 50 rows reaches the receiver exactly once."""
    clock = Clock(T0)
    seed = open_outbox(store_url, clock=clock)
    for alert in alerts(50):
        seed.enqueue(alert, "firing", ["hook"])
    outboxes = [open_outbox(store_url, clock=clock) for _ in range(2)]  # two engines, as two processes would have
    runs = [dispatcher(outbox, {"hook": hook(receiver)}, clock, concurrency={"hook": 4}) for outbox in outboxes]

    async def drain(run: Dispatcher) -> int:
        tried, deadline = 0, time.monotonic() + 60
        while await asyncio.to_thread(seed.entries, status=DeliveryStatus.PENDING) and time.monotonic() < deadline:
            tried += sum((await run.run_once()).values())
        return tried

    async def both() -> list[int]:
        return await asyncio.gather(*(drain(run) for run in runs))

    try:
        tried = asyncio.run(both())
        entries = seed.entries()
    finally:
        for outbox in (seed, *outboxes):
            outbox.close()
    assert sum(tried) == 50 and min(tried) > 0  # both took rows, none was tried twice
    assert sorted(receiver.ids()) == sorted(entry.notification.id for entry in entries)
    assert {(entry.status, entry.attempts) for entry in entries} == {(DeliveryStatus.DELIVERED, 1)}


@pytest.mark.stack
def test_lease_of_a_dead_dispatcher_is_taken_over_once_it_expires(open_outbox, receiver, postgres_url):
    """Rows leased by a dispatcher that died wait out the lease, then another delivers them; its late result is
    ignored."""
    clock = Clock(T0)
    outbox = open_outbox(postgres_url, clock=clock)
    dead = open_outbox(postgres_url, clock=clock)
    try:
        for alert in alerts(3):
            outbox.enqueue(alert, "firing", ["hook"])
        held = dead.claim("hook", limit=2, lease_seconds=30)
        live = dispatcher(outbox, {"hook": hook(receiver)}, clock)
        delivered = []
        for wait in (0, 29.9, 0.1):
            clock.advance(wait)
            asyncio.run(live.run_once())
            delivered.append(len(receiver.requests))
        late = dead.record(held[0], status=DeliveryStatus.PENDING, now=clock.now, error="late answer")
        entries = outbox.entries()
    finally:
        outbox.close()
        dead.close()
    assert delivered == [1, 1, 3]  # the free row at once, the leased ones only once the lease ran out
    assert sorted(receiver.ids()) == sorted(entry.notification.id for entry in entries)
    assert not late
    assert [(entry.status, entry.attempts) for entry in entries] == [
        (DeliveryStatus.DELIVERED, 2),
        (DeliveryStatus.DELIVERED, 2),
        (DeliveryStatus.DELIVERED, 1),
    ]

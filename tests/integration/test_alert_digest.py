"""The P1 digest: one notification per closed period with P1 transitions (hour-long periods here, 30 minutes by
default), on an injected clock, across restarts of the service on the same store (SQLite file and the real
PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from otel_monitor.monitor.alerting.delivery.digest import (
    DIGEST_ERROR_CODE,
    DIGEST_MESSAGE,
    DigestStore,
    P1Digest,
    digest_notification,
    period_start,
)
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.evaluate.changes import Change, ChangeKind
from otel_monitor.monitor.alerting.incidents import IncidentStore
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.service import AlertingService
from otel_monitor.monitor.alerting.state import AlertStore
from tests.support.clocks import Clock

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def digest_store(clock):
    """An in-memory digest store on the test clock, closed with its threads after the test."""
    store = DigestStore(clock=clock)
    yield store
    store.close()
    store.executor.shutdown()


def alert(
    code: str, *, priority: Priority = Priority.P1, service: str = "gemini", state: AlertState = AlertState.FIRING
) -> Alert:
    return Alert(
        fingerprint=f"fp-{code}-{service}",
        rule=code.lower(),
        priority=priority,
        state=state,
        error_code=code,
        summary=f"{code} summary",
        action_required=f"Fix {code}",
        runbook="rb",
        labels={"service": service},
        starts_at=T0,
        trace_id="ab" * 16,
        jaeger_url="http://jaeger/trace/" + "ab" * 16,
        ends_at=T0 + dt.timedelta(minutes=30) if state is AlertState.RESOLVED else None,
    )


# (events as (minutes after T0, alert), flush at minutes, expected error codes per digest sent)
CASES = [
    pytest.param(
        [
            (1, alert("GEMINI_ERROR_RATE_HIGH")),
            (20, alert("D_ID_QUOTA_LOW", service="d-id")),
            (59, alert("CELERY_QUEUE_LONG", service="celery")),
        ],
        61,
        [["GEMINI_ERROR_RATE_HIGH", "D_ID_QUOTA_LOW", "CELERY_QUEUE_LONG"]],
        id="three-p1-one-digest",
    ),
    pytest.param(
        [(5, alert("GEMINI_ERROR_RATE_HIGH")), (40, alert("GEMINI_ERROR_RATE_HIGH", state=AlertState.RESOLVED))],
        60,
        [["GEMINI_ERROR_RATE_HIGH", "GEMINI_ERROR_RATE_HIGH"]],
        id="firing-and-resolved",
    ),
    pytest.param(
        [(5, alert("GEMINI_ERROR_RATE_HIGH")), (6, alert("GEMINI_ERROR_RATE_HIGH"))],
        60,
        [["GEMINI_ERROR_RATE_HIGH"]],
        id="same-transition-once",
    ),
    pytest.param(
        [(5, alert("GEMINI_ERROR_RATE_HIGH")), (70, alert("D_ID_QUOTA_LOW", service="d-id"))],
        130,
        [["GEMINI_ERROR_RATE_HIGH"], ["D_ID_QUOTA_LOW"]],
        id="two-hours-two-digests",
    ),
    pytest.param([(5, alert("GEMINI_ERROR_RATE_HIGH"))], 59, [], id="hour-still-open"),
    pytest.param(
        [(5, alert("GEMINI_INVALID_API_KEY", priority=Priority.P0)), (6, alert("DAILY", priority=Priority.P2))],
        61,
        [],
        id="non-p1-ignored",
    ),
    pytest.param([], 61, [], id="empty-hour-nothing"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("events", "flush_at", "expected"), CASES)
async def test_digest_groups_the_hour(clock, digest_store, events, flush_at, expected):
    """Each closed hour with P1 transitions gives one digest listing them all; nothing else is sent."""
    sent: list[Notification] = []
    digest = P1Digest(sent.append, period=HOUR, store=digest_store, clock=clock)
    for minutes, item in events:
        clock.now = T0 + dt.timedelta(minutes=minutes)
        await digest.add(item)
    clock.now = T0 + dt.timedelta(minutes=flush_at)
    assert await digest.flush() == sent
    assert [[entry.alert.error_code for entry in n.digest] for n in sent] == expected
    assert all(n.alert.priority is Priority.P1 and n.alert.error_code == DIGEST_ERROR_CODE for n in sent)
    assert await digest.flush() == []  # each hour is sent once


@pytest.mark.asyncio
async def test_digest_log_line_and_round_trip(clock, digest_store, caplog):
    """The digest is logged at WARNING in the P1 shape with every alert's fields, and survives the outbox's JSON."""
    sent: list[Notification] = []

    async def send(notification: Notification) -> None:
        sent.append(notification)

    digest = P1Digest(send, period=HOUR, store=digest_store, clock=clock)
    await digest.add(alert("GEMINI_ERROR_RATE_HIGH"))
    await digest.add(alert("D_ID_QUOTA_LOW", service="d-id", state=AlertState.RESOLVED))
    clock.now = T0 + dt.timedelta(hours=1, seconds=1)
    with caplog.at_level(logging.WARNING, logger="otel_monitor.alerts"):
        await digest.flush()
    (record,) = [r for r in caplog.records if r.getMessage() == DIGEST_MESSAGE]
    assert record.levelno == logging.WARNING and record.alert_priority == "P1"
    alerts = record.details["alerts"]
    assert [(a["status"], a["error_code"], a["service"]) for a in alerts] == [
        ("firing", "GEMINI_ERROR_RATE_HIGH", "gemini"),
        ("resolved", "D_ID_QUOTA_LOW", "d-id"),
    ]
    assert alerts[0]["action_required"] == "Fix GEMINI_ERROR_RATE_HIGH"
    assert alerts[0]["trace_id"] == "ab" * 16 and alerts[0]["jaeger_url"].endswith("ab" * 16)
    (notification,) = sent
    assert Notification.from_json(notification.to_json()) == notification


@pytest.mark.asyncio
async def test_failed_hand_over_keeps_the_hour(clock, digest_store):
    """A send that raises leaves the hour's transitions for the next flush: nothing is dropped."""
    calls: list[Notification] = []

    def send(notification: Notification) -> None:
        calls.append(notification)
        if len(calls) == 1:
            raise RuntimeError("outbox down")

    digest = P1Digest(send, period=HOUR, store=digest_store, clock=clock)
    await digest.add(alert("GEMINI_ERROR_RATE_HIGH"))
    clock.now = T0 + dt.timedelta(hours=1)
    with pytest.raises(RuntimeError):
        await digest.flush()
    assert digest.pending() == 1
    (again,) = await digest.flush()
    assert again.id == calls[0].id and digest.pending() == 0


DELIVERY = DeliveryConfig.model_validate(
    {
        "channels": {
            "hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
            "ops": {"type": "webhook", "url": "http://127.0.0.1:9/ops"},
        },
        "routing": {"P1": ["hook", "ops"]},
    }
)


def service_on(url: str, clock: Clock) -> AlertingService:
    """The alerting service of a (re)started monitor on the store at ``url``, with no rules: transitions are fed."""
    outbox = Outbox(url, clock=clock)
    return AlertingService(
        [],
        {},
        outbox,
        Dispatcher.from_config(outbox, DELIVERY, {}),
        DELIVERY,
        clock=clock,
        state=AlertStore(url, clock=clock),
        incidents=IncidentStore(url, clock=clock),
        digests=DigestStore(url, clock=clock),
        digest_period=HOUR,
    )


def minutes(count: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=count)


# (restart at minutes, expected error codes per digest): GEMINI at 10:05 and D_ID at 10:20 before the restart,
# D_ID again and CELERY 5 minutes after it (in the same hour D_ID counts once), the flush at 12:01.
RESTARTS = [
    pytest.param(40, [["GEMINI_ERROR_RATE_HIGH", "D_ID_QUOTA_LOW", "CELERY_QUEUE_LONG"]], id="hour-open"),
    pytest.param(
        65,
        [["GEMINI_ERROR_RATE_HIGH", "D_ID_QUOTA_LOW"], ["D_ID_QUOTA_LOW", "CELERY_QUEUE_LONG"]],
        id="hour-closed-unsent",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("restart_at", "expected"), RESTARTS)
async def test_restart_keeps_the_hours_transitions(store_url, restart_at, expected):
    """P1 transitions recorded before a restart are in their hour's one digest with those after it, each once."""
    clock = Clock(minutes(5))
    first = service_on(store_url, clock)
    await first.pipeline.run([Change(alert("GEMINI_ERROR_RATE_HIGH"), ChangeKind.FIRED)])
    clock.now = minutes(20)
    await first.pipeline.run([Change(alert("D_ID_QUOTA_LOW", service="d-id"), ChangeKind.FIRED)])
    await first.stop()

    clock.now = minutes(restart_at)
    second = service_on(store_url, clock)
    try:
        clock.now = minutes(restart_at + 5)
        await second.pipeline.run([Change(alert("D_ID_QUOTA_LOW", service="d-id"), ChangeKind.FIRED)])
        await second.pipeline.run([Change(alert("CELERY_QUEUE_LONG", service="celery"), ChangeKind.FIRED)])
        clock.now = minutes(121)
        sent = await second.digest.flush()
        queued = second.outbox.entries()
        assert [[entry.alert.error_code for entry in n.digest] for n in sent] == expected
        assert sorted((e.notification.id, e.channel) for e in queued) == sorted(
            (n.id, channel) for n in sent for channel in ("hook", "ops")
        )
        assert second.digest.pending() == 0 and await second.digest.flush() == []
    finally:
        await second.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("crash_before_forget", [False, True], ids=["entries-forgotten", "crash-before-forget"])
async def test_restart_after_the_digest_was_queued_queues_it_not_again(store_url, monkeypatch, crash_before_forget):
    """A digest queued before a restart is not queued again, even when the crash came before its entries were
    dropped (the digest's id is its hour and its entries, and the outbox keeps one row per id and channel)."""
    clock = Clock(minutes(5))
    first = service_on(store_url, clock)
    await first.pipeline.run([Change(alert("GEMINI_ERROR_RATE_HIGH"), ChangeKind.FIRED)])
    clock.now = minutes(61)
    if crash_before_forget:

        def killed(period_start, row_ids):
            raise RuntimeError("killed between queueing the digest and dropping its entries")

        monkeypatch.setattr(first.digest.store, "forget", killed)
        with pytest.raises(RuntimeError):
            await first.digest.flush()
    else:
        await first.digest.flush()
    (queued, _) = first.outbox.entries()
    await first.stop()

    second = service_on(store_url, clock)
    try:
        await second.digest.flush()
        assert [(e.notification.id, e.channel) for e in second.outbox.entries()] == [
            (queued.notification.id, "hook"),
            (queued.notification.id, "ops"),
        ]
        assert second.digest.pending() == 0
    finally:
        await second.stop()


@pytest.mark.asyncio
async def test_run_sends_hours_left_unsent_at_start(clock, digest_store):
    """The digest loop flushes once as it starts, so an hour a restart left unsent does not wait for the next hour."""
    sent: list[Notification] = []
    digest = P1Digest(sent.append, period=HOUR, store=digest_store, clock=clock)
    await digest.add(alert("GEMINI_ERROR_RATE_HIGH"))
    clock.now = minutes(65)

    async def stop(seconds: float) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await digest.run(sleep=stop)
    assert [[entry.alert.error_code for entry in n.digest] for n in sent] == [["GEMINI_ERROR_RATE_HIGH"]]


@pytest.fixture
def shared_store(store_url, clock):
    """A digest store on a SQLite file or the real PostgreSQL, as monitors sharing it have; closed after the test."""
    store = DigestStore(store_url, clock=clock)
    yield store
    store.close()
    store.executor.shutdown()


@pytest.mark.asyncio
async def test_transition_recorded_after_its_hour_was_read_goes_out_in_a_follow_up(clock, shared_store):
    """A transition of 10:00-11:00 committed after the flush read that hour (a monitor whose clock lags, a slow
    write) is not forgotten with the hour: the next flush sends it in a digest of its own, naming the same hour and
    saying it comes after that hour's digest, with its own id and fingerprint."""
    sent: list[Notification] = []
    lagging = P1Digest(
        sent.append, period=HOUR, store=shared_store, clock=Clock(minutes(59) + dt.timedelta(seconds=59))
    )

    async def send(notification: Notification) -> None:
        sent.append(notification)
        if len(sent) == 1:  # between reading the hour and forgetting it
            await lagging.add(alert("D_ID_QUOTA_LOW", service="d-id"))

    digest = P1Digest(send, period=HOUR, store=shared_store, clock=clock)
    await digest.add(alert("GEMINI_ERROR_RATE_HIGH"))
    clock.now = minutes(61)
    (first,) = await digest.flush()
    assert digest.pending() == 1
    (late,) = await digest.flush()
    assert [[entry.alert.error_code for entry in n.digest] for n in sent] == [
        ["GEMINI_ERROR_RATE_HIGH"],
        ["D_ID_QUOTA_LOW"],
    ]
    assert late.id != first.id and late.alert.fingerprint != first.alert.fingerprint
    assert "between 2026-03-01 10:00 and 11:00 UTC" in first.alert.summary
    assert late.alert.summary.startswith(
        "1 more P1 alert transitions between 2026-03-01 10:00 and 11:00 UTC, recorded after that period's digest"
    )
    assert late.alert.starts_at == first.alert.starts_at == T0
    assert digest.pending() == 0 and await digest.flush() == []


@pytest.mark.asyncio
async def test_crash_replay_of_an_hour_gives_the_same_digest_id(clock, shared_store, monkeypatch):
    """Handed over again after a crash before its entries were forgotten, the hour's digest has the same id (the
    outbox queues it once), whatever order the entries were read in."""
    sent: list[Notification] = []
    digest = P1Digest(sent.append, period=HOUR, store=shared_store, clock=clock)
    for code in ("GEMINI_ERROR_RATE_HIGH", "D_ID_QUOTA_LOW"):
        await digest.add(alert(code))
    clock.now = minutes(61)

    def killed(period_start, row_ids):
        raise RuntimeError("killed between queueing the digest and dropping its entries")

    with monkeypatch.context() as patched:
        patched.setattr(shared_store, "forget", killed)
        with pytest.raises(RuntimeError):
            await digest.flush()
    (replayed,) = await digest.flush()
    assert replayed.id == sent[0].id and replayed.alert.summary == sent[0].alert.summary
    assert digest_notification(T0, list(reversed(replayed.digest))).id == replayed.id


@pytest.mark.asyncio
@pytest.mark.parametrize("saved_by", ["next-add", "flush"])
async def test_transition_added_while_the_store_is_down_is_kept_and_sent(clock, tmp_path, caplog, saved_by):
    """A P1 transition the store refuses (its directory is missing) is held in memory and saved by the next add or
    flush once the store is back, then sent in its hour's digest."""
    folder = tmp_path / "store"
    store = DigestStore(f"sqlite:///{folder / 'alerts.db'}", clock=clock)
    sent: list[Notification] = []
    digest = P1Digest(sent.append, period=HOUR, store=store, clock=clock)
    try:
        clock.now = minutes(5)
        with caplog.at_level(logging.ERROR, logger="otel_monitor.alerts"):
            assert await digest.add(alert("GEMINI_ERROR_RATE_HIGH"))
        assert [r.getMessage() for r in caplog.records] == ["P1 digest store unavailable; transitions held in memory"]
        folder.mkdir()
        expected = ["GEMINI_ERROR_RATE_HIGH"]
        if saved_by == "next-add":
            clock.now = minutes(20)
            await digest.add(alert("D_ID_QUOTA_LOW", service="d-id"))
            expected.append("D_ID_QUOTA_LOW")
        clock.now = minutes(61)
        assert [[entry.alert.error_code for entry in n.digest] for n in await digest.flush()] == [expected]
        assert digest.pending() == 0
    finally:
        store.close()
        store.executor.shutdown()


@pytest.mark.parametrize(
    ("moment", "period", "start"),
    [
        (dt.datetime(2026, 3, 1, 10, 29, 59, tzinfo=dt.UTC), dt.timedelta(minutes=30), T0),
        (dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC), dt.timedelta(minutes=30), minutes(30)),
        (dt.datetime(2026, 3, 1, 10, 59, tzinfo=dt.UTC), HOUR, T0),
        (dt.datetime(2026, 3, 1, 10, 44, tzinfo=dt.UTC), dt.timedelta(minutes=15), minutes(30)),
    ],
)
def test_period_start(moment, period, start):
    """Digest periods tile the UTC day from midnight."""
    assert period_start(moment, period) == start


@pytest.mark.parametrize(
    "period", [dt.timedelta(minutes=7), dt.timedelta(seconds=90), dt.timedelta(hours=2), dt.timedelta(0)]
)
def test_invalid_periods_are_refused(digest_store, period):
    """A period that does not divide the day into whole minutes, or is longer than an hour, is refused."""
    with pytest.raises(ValueError, match="digest period"):
        P1Digest(lambda digest: None, store=digest_store, period=period)


@pytest.mark.asyncio
async def test_default_period_is_half_an_hour(clock, digest_store):
    """By default a P1 transition of 10:31 goes out in the 10:30-11:00 digest, not with the next hour."""
    sent: list[Notification] = []
    digest = P1Digest(sent.append, store=digest_store, clock=clock)
    clock.now = minutes(31)
    await digest.add(alert("GEMINI_ERROR_RATE_HIGH"))
    clock.now = minutes(59)
    assert await digest.flush() == []
    clock.now = minutes(60)
    (notification,) = await digest.flush()
    assert "between 2026-03-01 10:30 and 11:00 UTC" in notification.alert.summary
    assert digest.seconds_to_next_period() == 30 * 60

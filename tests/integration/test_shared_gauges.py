"""The monitor's gauges of the values every backend process shares through Redis (consecutive failures per
provider, today's active users), read from a real Redis through otel_monitor.testing's in-memory reader."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest
import redis

from otel_monitor.instrument.business_metrics import ActiveUsers
from otel_monitor.instrument.failure_streaks import RedisFailureStreaks
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.monitor.shared_gauges import SharedGauges
from otel_monitor.testing import CapturedTelemetry, in_memory_telemetry

pytestmark = pytest.mark.stack

STREAKS = "external_api.consecutive_failures"
USERS = "video.active_users"


def _values(captured: CapturedTelemetry) -> dict[str, dict[str | None, float]]:
    """{instrument: {service label (None without one): value}} of one collection; an instrument without a value
    is absent."""
    collection = captured.collect()
    return {name: collection.values_by(name, "service") for name in collection.names()}


@pytest.fixture
def gauges(own_redis):
    """The monitor's shared gauges over the test's own Redis (emptied first), and the capture that collects them."""
    redis.Redis.from_url(own_redis.redis_url).flushdb()
    captured = in_memory_telemetry()
    shared = SharedGauges.from_url(own_redis.redis_url, meter_provider=captured.meter_provider)
    yield shared, captured
    shared.close()


def test_values_the_backend_writes_appear_in_the_monitors_gauges(own_redis, gauges):
    """Failures and users recorded as backend processes record them (two writers, through their background
    writers) are the gauges' values: the streak per provider (0 for the others), today's distinct users."""
    _shared, captured = gauges
    backend = [
        (
            RedisFailureStreaks(redis.Redis.from_url(own_redis.redis_url)),
            ActiveUsers(redis.Redis.from_url(own_redis.redis_url)),
        )
        for _process in range(2)
    ]
    for i in range(7):
        streaks, users = backend[i % 2]
        streaks.record("gemini", failed=True, trace_id=f"t{i}")
        users.record(f"user-{i % 5}")
    backend[0][0].record("youtube", failed=True)
    for streaks, _users in backend:
        streaks.flush()
    for _streaks, users in backend:
        users.flush()
    assert _values(captured) == {STREAKS: {"gemini": 7, "stability": 0, "d-id": 0, "youtube": 1}, USERS: {None: 5}}


def test_a_streak_that_ended_is_shown_with_its_recent_peak(own_redis, gauges):
    """A success ends a streak of 11: the gauge shows the peak while it is recent, as the streak.* checks see it."""
    _shared, captured = gauges
    streaks = RedisFailureStreaks(redis.Redis.from_url(own_redis.redis_url))
    for _call in range(11):
        streaks.record("stability", failed=True)
    streaks.record("stability", failed=False)
    streaks.flush()
    assert _values(captured)[STREAKS]["stability"] == 11


def test_active_users_are_those_of_today_utc(own_redis, gauges):
    """Users recorded on another UTC day do not count today."""
    _shared, captured = gauges
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    old = ActiveUsers(redis.Redis.from_url(own_redis.redis_url), clock=lambda: yesterday)
    today = ActiveUsers(redis.Redis.from_url(own_redis.redis_url))
    for user in ("a", "b", "c"):
        old.record(user)
    today.record("a")
    for users in (old, today):
        users.flush()
    assert _values(captured)[USERS] == {None: 1}


def test_redis_down_leaves_no_value_logged_once(own_redis, gauges, caplog):
    """Redis stopped: collections succeed without a value for either gauge (not 0) and one WARNING is logged for
    the outage; Redis back: the values return and one INFO line says so."""
    _shared, captured = gauges
    own_redis["redis"].stop()
    with caplog.at_level(logging.INFO, logger="otel_monitor.shared_gauges"):
        assert [_values(captured) for _collection in range(3)] == [{}, {}, {}]
        own_redis.processes["redis"] = own_redis.redis().start()  # an empty Redis (no persistence)
        assert _values(captured) == {STREAKS: dict.fromkeys(SERVICE_KEYS, 0), USERS: {None: 0}}
    logged = [r for r in caplog.records if r.name == "otel_monitor.shared_gauges"]
    assert [r.levelno for r in logged] == [logging.WARNING, logging.INFO]
    assert logged[0].error_code == "REDIS_CONNECTION_FAILED"


@pytest.mark.asyncio
async def test_a_collection_on_the_event_loop_never_waits_on_redis(own_redis, gauges, caplog):
    """Collected on an event loop's thread, the gauges read nothing (no value, one WARNING); collected from another
    thread, as the monitor's metric reader does, they read Redis."""
    _shared, captured = gauges
    with caplog.at_level(logging.WARNING, logger="otel_monitor.shared_gauges"):
        assert _values(captured) == {} and _values(captured) == {}
    assert len(caplog.records) == 1 and "event loop" in caplog.records[0].getMessage()
    assert (await asyncio.to_thread(_values, captured))[USERS] == {None: 0}

"""Consecutive failures per provider add up across processes through Redis, and Redis trouble never reaches the host."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import redis

from otel_monitor.instrument.failure_streaks import (
    LocalFailureStreaks,
    RedisFailureStreaks,
    Streak,
    failure_streaks_from_url,
)
from otel_monitor.instrument.redis_client import telemetry_redis
from otel_monitor.monitor.alerting.evaluate.sources import CheckSource, Sample
from otel_monitor.monitor.alerting.rules import load_rules
from tools.devstack import free_port, wait_until
from tools.devstack.stack import REPO_ROOT

SHIPPED = REPO_ROOT / "config" / "alert-rules.yaml"


def _record_failures(redis_url: str, service: str, turns: list[int], my_turn: int, trace_prefix: str) -> None:
    """Records a failure on each of this process's turns (a shared Redis counter orders the turns)."""
    client = redis.Redis.from_url(redis_url)
    streaks = failure_streaks_from_url(redis_url)
    for turn in turns:
        while int(client.get("test:turn") or 0) != turn:
            time.sleep(0.001)
        streaks.record(service, failed=True, trace_id=f"{trace_prefix}{turn:02d}")
        streaks.flush()  # the update is sent by a background writer: let it land before passing the turn
        client.incr("test:turn")


@pytest.mark.stack
def test_failures_of_two_processes_add_up(own_redis):
    """11 failures alternating between two processes make a streak of 11; the last failing trace is kept. A success
    ends it: the running count is 0, and the streak stays readable as the recent peak."""
    client = redis.Redis.from_url(own_redis.redis_url)
    client.delete("test:turn")
    shared = RedisFailureStreaks(client)
    shared.reset(["gemini"])
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_record_failures, args=(own_redis.redis_url, "gemini", list(range(i, 11, 2)), i, f"p{i}-")
        )
        for i in (0, 1)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert shared.current("gemini") == Streak(11, "p0-10")
    assert shared.record("gemini", failed=False) == 0
    shared.flush()
    assert int(client.get("otel_monitor:failure_streak:gemini:count")) == 0
    assert shared.current("gemini") == Streak(11, "p0-10", ended=True)


def _writers(url: str, peak_ttl: float) -> tuple[RedisFailureStreaks, RedisFailureStreaks]:
    """Two backend processes' streak writers: each its own Redis client and background writer."""
    return tuple(RedisFailureStreaks(redis.Redis.from_url(url), peak_ttl=peak_ttl) for _ in range(2))


def _record(writer: RedisFailureStreaks, service: str, events: str, trace_prefix: str) -> None:
    for index, event in enumerate(events):
        writer.record(service, failed=event == "F", trace_id=f"{trace_prefix}{index}")
    writer.flush()


@pytest.mark.stack
@pytest.mark.asyncio
async def test_streak_that_ends_between_evaluations_is_still_seen(own_redis):
    """Two writers (two backend processes) fail 11 times in a row, then one succeeds before the monitor evaluates:
    the shipped P0 streak rule still fires, with the streak's last failing trace; a shorter streak ending later
    does not lower that peak, and once the peak's time is over the rule is quiet."""
    first, second = _writers(own_redis.redis_url, peak_ttl=2.0)
    first.reset(["stability"])
    monitor = CheckSource(streaks=RedisFailureStreaks(redis.Redis.from_url(own_redis.redis_url)))
    rules = {rule.name: rule for rule in load_rules(SHIPPED, promtool=None)}
    critical, streak_p1 = rules["ApiConsecutiveFailuresCritical"], rules["ApiConsecutiveFailures"]

    _record(first, "stability", "FFFFFF", "a")
    _record(second, "stability", "FFFFF", "b")
    assert await monitor.evaluate(critical) == [Sample({"service": "stability"}, 11.0, "b4")]
    _record(second, "stability", "S", "b")  # the streak ends before the next evaluation
    assert await monitor.evaluate(critical) == [Sample({"service": "stability"}, 11.0, "b4")]
    _record(first, "stability", "FFFFFFS", "c")  # a streak of 6 ends: P1-sized, below the recent peak
    assert await monitor.evaluate(critical) == [Sample({"service": "stability"}, 11.0, "b4")]
    peak_key = "otel_monitor:failure_streak:stability:peak"
    wait_until(lambda: not redis.Redis.from_url(own_redis.redis_url).exists(peak_key), 10, what="the peak's expiry")
    assert await monitor.evaluate(critical) == []
    assert await monitor.evaluate(streak_p1) == []  # the 6 ended within the first peak's time: kept no longer
    _record(second, "stability", "FFFFFFS", "d")
    assert await monitor.evaluate(streak_p1) == [Sample({"service": "stability"}, 6.0, "d5")]
    assert await monitor.evaluate(critical) == []


@pytest.mark.parametrize(
    "events,expected",
    [
        ("FFF", Streak(3, "t2")),
        ("S", Streak(0)),
        ("F" * 11, Streak(11, "t10")),
        ("FFSF", Streak(2, "t1", ended=True)),  # the streak that just ended outranks the new one for a minute
        ("FFS+F", Streak(1, "t4")),  # a minute later, the running streak
        ("FFFSFS", Streak(3, "t2", ended=True)),  # a shorter streak ending keeps the larger peak
        ("FSFFFS", Streak(3, "t4", ended=True)),  # a larger one replaces it
        ("FFFSFFFF", Streak(4, "t7")),  # a running streak above the peak is the answer
    ],
)
def test_local_streaks_count_failures_in_a_row(events, expected):
    """Failures in a row add up and a success ends the streak; ``current`` answers the larger of the running
    streak and the peak of one that ended within the last minute. ``F`` fails, ``S`` succeeds, ``+`` a minute."""
    now = [0.0]
    streaks = LocalFailureStreaks(clock=lambda: now[0])
    for index, event in enumerate(events):
        if event == "+":
            now[0] += 60
        else:
            streaks.record("d-id", event == "F", f"t{index}")
    assert streaks.current("d-id") == expected


def test_redis_away_falls_back_without_raising():
    """With Redis unreachable, recording neither raises nor waits; reads fall back to this process's count and
    do not try Redis again within retry_after."""
    now = [0.0]
    client = telemetry_redis(f"redis://127.0.0.1:{free_port()}/0")
    streaks = RedisFailureStreaks(client, retry_after=30, clock=lambda: now[0])
    assert [streaks.record("youtube", failed=True, trace_id="a" * 32) for _ in range(3)] == [1, 2, 3]
    assert streaks.current("youtube").count == 3  # Redis refused: the local count
    calls = []
    client.mget = lambda *a, **k: calls.append(1)  # must not be tried again within retry_after
    assert streaks.current("youtube") == Streak(3, "a" * 32)
    assert calls == []
    streaks.flush(timeout=10)  # a bound: each refused try takes a moment on a loaded host
    assert streaks._writer.failed == 3  # the queued updates were tried once, in the background, and counted

"""Consecutive failures per provider add up across processes through Redis, and Redis trouble never reaches the host."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import redis

from otel_monitor.devstack import free_port
from otel_monitor.failure_streaks import LocalFailureStreaks, RedisFailureStreaks, Streak, failure_streaks_from_url


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
def test_failures_of_two_processes_add_up(stack):
    """11 failures alternating between two processes make a streak of 11; the last failing trace is kept."""
    client = redis.Redis.from_url(stack.redis_url)
    client.delete("test:turn")
    shared = RedisFailureStreaks(client)
    shared.reset(["gemini"])
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_record_failures, args=(stack.redis_url, "gemini", list(range(i, 11, 2)), i, f"p{i}-"))
        for i in (0, 1)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert shared.current("gemini").count == 11
    assert shared.current("gemini").last_trace_id == "p0-10"
    assert shared.record("gemini", failed=False) == 0
    shared.flush()
    assert shared.current("gemini").count == 0


@pytest.mark.parametrize("events,expected", [
    ([True] * 3, 3),
    ([True, True, False, True], 1),
    ([False], 0),
    ([True] * 11, 11),
])
def test_local_streaks_count_failures_in_a_row(events, expected):
    """A success resets the streak; failures in a row add up."""
    streaks = LocalFailureStreaks()
    for failed in events:
        streaks.record("d-id", failed)
    assert streaks.current("d-id").count == expected


def test_redis_away_falls_back_without_raising():
    """With Redis unreachable, recording neither raises nor waits; reads fall back to this process's count and
    do not try Redis again within retry_after."""
    now = [0.0]
    client = redis.Redis(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    streaks = RedisFailureStreaks(client, retry_after=30, clock=lambda: now[0])
    assert [streaks.record("youtube", failed=True, trace_id="a" * 32) for _ in range(3)] == [1, 2, 3]
    assert streaks.current("youtube").count == 3  # Redis refused: the local count
    calls = []
    client.mget = lambda *a, **k: calls.append(1)  # must not be tried again within retry_after
    assert streaks.current("youtube") == Streak(3, "a" * 32)
    assert calls == []
    streaks.flush(timeout=2)
    assert streaks._writer.failed == 3  # the queued updates were tried once, in the background, and counted

"""Gemini and YouTube usage read from the UsageCounter's hourly buckets on a real Redis: only the current window."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import redis

from otel_monitor.instrument.usage_counter import UsageCounter
from otel_monitor.monitor.quota.config import QuotaConfig
from otel_monitor.monitor.quota.usage import CounterQuotaSource
from tests.support.stacks import private_stack
from tools.devstack import DevStack, StackPorts

pytestmark = pytest.mark.stack
UTC = dt.UTC
RULES = QuotaConfig().reset_rules()


@pytest.fixture(scope="module")
def redis_server():
    """A private Redis on a free port, for this module."""
    with private_stack("otel-monitor-quota-redis-", "redis") as stack:
        yield stack


@pytest.fixture
def counter(redis_server):
    """A UsageCounter writing synchronously under a prefix of its own."""
    client = redis.Redis.from_url(redis_server.redis_url)
    yield UsageCounter(client, prefix=f"test:{uuid.uuid4().hex}", background=False)
    client.close()


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    "service, records, now, expected_used, expected_start",
    [
        # Gemini, window from 00:00 UTC: the hour before midnight belongs to yesterday
        (
            "gemini",
            [("2026-03-09T23:59:00Z", 5), ("2026-03-10T00:00:00Z", 7), ("2026-03-10T05:10:00Z", 3)],
            "2026-03-10T06:00:00Z",
            10,
            "2026-03-10T00:00:00Z",
        ),
        (
            "gemini",
            [("2026-02-28T23:30:00Z", 4), ("2026-03-01T00:30:00Z", 1)],
            "2026-02-28T23:59:59Z",
            4,
            "2026-02-28T00:00:00Z",
        ),
        # units after the clock reading are not in the window yet
        (
            "gemini",
            [("2026-03-10T01:00:00Z", 2), ("2026-03-10T09:00:00Z", 50)],
            "2026-03-10T02:00:00Z",
            2,
            "2026-03-10T00:00:00Z",
        ),
        # YouTube, window from midnight Pacific: 07:00Z in summer time, 08:00Z in winter
        (
            "youtube",
            [("2026-03-10T06:59:59Z", 1600), ("2026-03-10T07:00:00Z", 1600), ("2026-03-10T08:15:00Z", 1)],
            "2026-03-10T09:00:00Z",
            1601,
            "2026-03-10T07:00:00Z",
        ),
        (
            "youtube",
            [("2026-01-15T07:30:00Z", 100), ("2026-01-15T08:00:00Z", 1600), ("2026-01-15T20:00:00Z", 3)],
            "2026-01-15T21:00:00Z",
            1603,
            "2026-01-15T08:00:00Z",
        ),
        # the 25-hour day of 2026-11-01 counts all 25 hours
        (
            "youtube",
            [("2026-11-01T06:30:00Z", 9), ("2026-11-01T07:00:00Z", 1), ("2026-11-02T07:30:00Z", 1)],
            "2026-11-02T07:59:00Z",
            2,
            "2026-11-01T07:00:00Z",
        ),
    ],
)
@pytest.mark.asyncio
async def test_usage_of_the_current_window(counter, service, records, now, expected_used, expected_start):
    """Only units recorded from the window's start through the clock reading count, however they fall in hours."""
    for at, units in records:
        counter.record(service, units, at=utc(at))
    total = QuotaConfig().provider(service).total
    source = CounterQuotaSource(service, counter, total, RULES[service], "units")
    reading = await source.read(utc(now))
    assert (reading.used, reading.total, reading.window_start) == (expected_used, total, utc(expected_start))
    assert (reading.stale, reading.error_code) == (False, None)


@pytest.mark.asyncio
async def test_redis_down_keeps_last_value():
    """When Redis stops, the last count stays, marked stale with REDIS_CONNECTION_FAILED; it comes back after."""
    workdir = Path(tempfile.mkdtemp(prefix="otel-monitor-quota-redis-down-"))
    stack = DevStack(workdir, StackPorts.free()).start("redis")
    client = redis.Redis.from_url(stack.redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        now = utc("2026-03-10T06:00:00Z")
        counter = UsageCounter(client, background=False)
        counter.record("gemini", 42, at=now)
        source = CounterQuotaSource("gemini", counter, 1000, RULES["gemini"], "requests")
        assert (await source.read(now)).used == 42
        stack.stop()
        reading = await source.read(now)
        assert (reading.used, reading.stale, reading.error_code) == (42, True, "REDIS_CONNECTION_FAILED")
    finally:
        client.close()
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

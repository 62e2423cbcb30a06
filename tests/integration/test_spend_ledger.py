"""The spend ledger on a real Redis: every process's calls summed per provider and UTC day and month, read back as
each budget's spend; Redis away never raises into the host, and the monitor then exports no spend (unknown, not 0)."""

from __future__ import annotations

import datetime as dt

import pytest
import redis

from otel_monitor.instrument.spend_ledger import BudgetPeriod, SpendLedger
from otel_monitor.monitor.budgets import BudgetMetricNames, BudgetsConfig, SpendLine, read_spend
from otel_monitor.monitor.shared_gauges import SharedGauges
from otel_monitor.testing import in_memory_telemetry

pytestmark = pytest.mark.stack

DEC_1 = dt.datetime(2026, 12, 1, 23, 59, tzinfo=dt.UTC)
DEC_2 = dt.datetime(2026, 12, 2, 0, 1, tzinfo=dt.UTC)
JAN_1 = dt.datetime(2027, 1, 1, 0, 1, tzinfo=dt.UTC)
BUDGETS = BudgetsConfig(daily={"total": 20, "d-id": 5}, monthly={"total": 400})


# What the gauges show once Redis is back and 2 USD of Gemini was spent: every spender and budget, then the total.
SPENT_AFTER = (("d-id", 0.0), ("gemini", 2.0), ("total", 2.0))


def by_budget_and_period(collection, name: str) -> dict[tuple[str, str], float]:
    """{(budget, period): value} of one budget gauge."""
    return {(point.labels["budget"], point.labels["period"]): point.value for point in collection if point.name == name}


@pytest.fixture
def client(own_redis):
    """A client of the test's own Redis, emptied first."""
    client = redis.Redis.from_url(own_redis.redis_url)
    client.flushdb()
    return client


def spend_in_two_processes(client: redis.Redis) -> SpendLedger:
    """Calls priced in two backend processes (each its own ledger and background writer) across a day and a month
    boundary; the first ledger, to read them back."""
    first, second = SpendLedger(client), SpendLedger(client)
    for ledger, service, amount, at in (
        (first, "gemini", 1.25, DEC_1),
        (second, "gemini", 2.5, DEC_1),
        (second, "d-id", 5.0, DEC_1),
        (first, "gemini", 0.5, DEC_2),
        (second, "stability", 4.0, JAN_1),
        (first, "youtube", 0.0, DEC_1),  # free: not counted
    ):
        ledger.add(service, amount, at)
    for ledger in (first, second):
        ledger.flush()
    return first


@pytest.mark.parametrize(
    "period,at,expected",
    [
        (BudgetPeriod.DAY, DEC_1, {"gemini": 3.75, "d-id": 5.0}),
        (BudgetPeriod.DAY, DEC_2, {"gemini": 0.5}),
        (BudgetPeriod.MONTH, DEC_2, {"gemini": 4.25, "d-id": 5.0}),
        (BudgetPeriod.DAY, JAN_1, {"stability": 4.0}),
        (BudgetPeriod.MONTH, JAN_1, {"stability": 4.0}),
    ],
)
def test_spend_is_summed_across_processes_per_utc_day_and_month(client, period, at, expected):
    """Two processes' additions sum in one Redis hash per period: each UTC day and month holds its own calls."""
    assert spend_in_two_processes(client).spent(period, at) == expected


def test_each_period_expires_after_it_ends(client):
    """A day's hash outlives its day by a little, a month's its month: Redis does not keep the ledger forever."""
    ledger = spend_in_two_processes(client)
    assert 2 * 86400 < client.ttl(ledger.key(BudgetPeriod.DAY, DEC_1)) <= 3 * 86400
    assert 62 * 86400 < client.ttl(ledger.key(BudgetPeriod.MONTH, DEC_1)) <= 63 * 86400


def test_read_spend_lists_each_spender_and_budget_then_the_total(client):
    """Each provider that spent this month or has a budget (by name), then the total, with the budgets set."""
    ledger = spend_in_two_processes(client)
    assert read_spend(ledger, BUDGETS, DEC_2) == [
        SpendLine("d-id", today_usd=0.0, month_usd=5.0, daily_budget_usd=5, monthly_budget_usd=None),
        SpendLine("gemini", today_usd=0.5, month_usd=4.25, daily_budget_usd=None, monthly_budget_usd=None),
        SpendLine("total", today_usd=0.5, month_usd=9.25, daily_budget_usd=20, monthly_budget_usd=400),
    ]


def test_redis_away_never_raises_into_the_host_and_the_spend_is_unknown(own_redis, client):
    """Redis stopped: a call's spend is dropped without an exception in the host; the monitor's collection exports
    the configured budgets but no spend (unknown, not 0), and the spend returns with Redis."""
    captured = in_memory_telemetry()
    gauges = SharedGauges.from_url(own_redis.redis_url, meter_provider=captured.meter_provider, budgets=BUDGETS)
    host = SpendLedger(redis.Redis.from_url(own_redis.redis_url, socket_timeout=1, socket_connect_timeout=1))
    try:
        own_redis["redis"].stop()
        host.add("gemini", 1.0)
        host.flush(timeout=3)
        collection = captured.collect()
        assert BudgetMetricNames.SPENT not in collection.names()
        assert by_budget_and_period(collection, BudgetMetricNames.LIMIT) == {
            ("total", "day"): 20,
            ("d-id", "day"): 5,
            ("total", "month"): 400,
        }
        with pytest.raises(redis.ConnectionError):
            read_spend(host, BUDGETS, DEC_1)

        own_redis.processes["redis"] = own_redis.redis().start()  # an empty Redis (no persistence)
        host.add("gemini", 2.0)
        host.flush()
        spent = by_budget_and_period(captured.collect(), BudgetMetricNames.SPENT)
        assert spent == {(budget, period): amount for budget, amount in SPENT_AFTER for period in ("day", "month")}
    finally:
        gauges.close()

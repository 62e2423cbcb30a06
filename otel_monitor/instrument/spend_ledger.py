"""USD spent per provider and calendar period (UTC day, UTC month), counted in Redis across every process."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.redis_writer import RedisWriter

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

__all__ = ["BudgetPeriod", "SpendLedger", "TOTAL_BUDGET"]

# The budget over every provider together (a provider's budget is named by its service key).
TOTAL_BUDGET = "total"


class BudgetPeriod(str, enum.Enum):
    """The calendar periods spend is counted and budgeted in, UTC: a budget's ``period`` label."""

    DAY = "day"
    MONTH = "month"


# A period's ledger outlives it a little (a reader's late clock, a look back at yesterday or last month).
_TTL_SECONDS = {BudgetPeriod.DAY: 3 * 86400, BudgetPeriod.MONTH: 63 * 86400}


def _period_stamp(period: BudgetPeriod, at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y%m%d" if period is BudgetPeriod.DAY else "%Y%m")


class SpendLedger:
    """Each priced call adds its cost to a Redis hash per period (``<prefix>:day:20261201``,
    ``<prefix>:month:202612``), one field per provider, through the host's background Redis writer
    (HINCRBYFLOAT: never waits, no read-modify-write race between processes). The sums live in Redis, not in a
    process, so a process that restarts mid-day loses nothing it had sent; the monitor reads them."""

    def __init__(
        self, redis_client: Redis, *, prefix: str = "otel_monitor:spend", writer: RedisWriter | None = None
    ) -> None:
        self._redis = redis_client
        self._writer = writer or RedisWriter(redis_client)
        self._prefix = prefix

    def key(self, period: BudgetPeriod, at: dt.datetime) -> str:
        return f"{self._prefix}:{period.value}:{_period_stamp(period, at)}"

    def add(self, service: str, amount: float, at: dt.datetime | None = None) -> None:
        """Adds ``amount`` USD to ``service``'s spend of the day and month of ``at`` (now); never waits on Redis."""
        if amount <= 0:
            return
        moment = at or utc_now()
        keys = [(self.key(period, moment), _TTL_SECONDS[period]) for period in BudgetPeriod]

        def increment(pipe: Pipeline) -> None:
            for key, ttl in keys:
                pipe.hincrbyfloat(key, service, amount)
                pipe.expire(key, ttl)

        self._writer.submit(increment)

    def flush(self, timeout: float = 5.0) -> None:
        """Waits up to ``timeout`` seconds for this process's queued additions to reach Redis."""
        self._writer.flush(timeout)

    def spent(self, period: BudgetPeriod, at: dt.datetime | None = None) -> dict[str, float]:
        """USD spent per provider in the period holding ``at`` (now), as every process reported it; raises what
        the Redis client raises."""
        raw = self._redis.hgetall(self.key(period, at or utc_now()))
        return {_text(service): float(value) for service, value in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

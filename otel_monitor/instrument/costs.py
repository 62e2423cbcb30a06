"""What each paid call costs by the configured price table, and the cost of each video project across processes."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from otel_monitor.instrument.prices import DEFAULT_PRICES
from otel_monitor.instrument.redis_writer import RedisWriter

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

    from otel_monitor.instrument.genai import TokenUsage

__all__ = [
    "COST_CURRENCY",
    "CallCost",
    "CompletedProject",
    "Price",
    "PriceTable",
    "ProjectCosts",
    "current_project_id",
    "project_scope",
]

_log = logging.getLogger("otel_monitor.costs")
COST_CURRENCY = "USD"
# The cost attributes of a call's span, after the open OpenTelemetry proposal (provisional names).
COST_AMOUNT = "cost.amount"
COST_CURRENCY_ATTRIBUTE = "cost.currency"
COST_SOURCE = "cost.source"
COST_SOURCE_LOCAL = "local"  # priced here, by the configured table (not a provider's bill)

_project: ContextVar[str | None] = ContextVar("otel_monitor_video_project", default=None)


class Price(BaseModel):
    """The price of one model or operation of a provider, USD; every part 0 unless given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million_tokens: float = Field(0.0, ge=0)
    output_per_million_tokens: float = Field(0.0, ge=0)
    per_image: float = Field(0.0, ge=0)  # each image the call produced
    per_credit: float = Field(0.0, ge=0)  # USD of one provider credit (D-ID, Stability)
    credits_per_call: float = Field(0.0, ge=0)  # credits a successful call spends (a D-ID talk)
    credits_per_image: float = Field(0.0, ge=0)  # credits each image produced spends (Stability)


@dataclass(frozen=True)
class CompletedProject:
    """A video project as it completed: its cost (USD), outcome, the trace it ran in and when it completed."""

    project_id: str
    cost_usd: float
    outcome: str
    trace_id: str | None
    completed_at: dt.datetime


@dataclass(frozen=True)
class CallCost:
    """What one call cost, and what it is counted as: its model (Gemini), otherwise its operation."""

    amount: float
    priced_as: str


class PriceTable:
    """Prices per provider, then per model or operation ("*": any other); a provider absent is not priced.

    What a call is billed: the tokens its answers reported (none on an error: Gemini reports none), each image it
    produced (a partial call: those that came back; a failed one: none), and its credits per call only when it
    succeeded (D-ID does not charge a talk that failed)."""

    def __init__(self, prices: Mapping[str, Mapping[str, Price | Mapping[str, float]]] | None = None) -> None:
        table = DEFAULT_PRICES if prices is None else prices
        self._prices = {
            service: {key: price if isinstance(price, Price) else Price(**price) for key, price in entries.items()}
            for service, entries in table.items()
        }

    def price(self, service: str, operation: str, model: str | None = None) -> Price | None:
        """The entry pricing a call: its model's, else its operation's, else "*", else nothing (free); None for a
        provider not priced."""
        entries = self._prices.get(service)
        if entries is None:
            return None
        for key in (model, operation, "*"):
            if key is not None and key in entries:
                return entries[key]
        return Price()

    def cost(
        self,
        service: str,
        operation: str,
        *,
        model: str | None = None,
        tokens: TokenUsage | None = None,
        images: int = 0,
        succeeded: bool = True,
    ) -> CallCost | None:
        """The call's cost in USD, or None when its provider has no prices."""
        price = self.price(service, operation, model)
        if price is None:
            return None
        amount = images * (price.per_image + price.credits_per_image * price.per_credit)
        if tokens is not None:
            amount += tokens.input * price.input_per_million_tokens / 1e6
            amount += tokens.output * price.output_per_million_tokens / 1e6
        if succeeded:
            amount += price.credits_per_call * price.per_credit
        return CallCost(amount, model or operation)


def current_project_id() -> str | None:
    """The video project the work in this context is for, if any (set by ``project_scope``)."""
    return _project.get()


@contextmanager
def project_scope(project_id: str | None) -> Iterator[None]:
    """Within it, the costs of provider calls add up to ``project_id``'s cost. In-process only: the project id is
    not sent anywhere (unlike baggage, which would reach the providers); each Celery task of a project opens its
    own scope with the project id it receives as an argument."""
    token = _project.set(project_id)
    try:
        yield
    finally:
        _project.reset(token)


class ProjectCosts:
    """USD spent per video project, summed over the calls of every process.

    With Redis, each call's cost is added to ``<prefix>:<project_id>`` (INCRBYFLOAT through the background writer,
    with a TTL so a project that never completes leaves nothing behind); the project's completion reads and deletes
    the sum. Without Redis the sum is this process's own (a project whose tasks run in one process).

    Each completed project (id, cost, outcome, trace id) is kept in the sorted set ``<completed_prefix>:<UTC day>``
    (score: the completion's epoch seconds, kept ``completed_ttl_seconds``) for the monitor's daily summary; without
    Redis none is kept (the monitor could not read this process)."""

    def __init__(
        self,
        redis_client: Redis | None = None,
        *,
        prefix: str = "otel_monitor:project_cost",
        ttl_seconds: int = 7 * 86400,
        writer: RedisWriter | None = None,
        max_local_projects: int = 10_000,
        completed_prefix: str = "otel_monitor:projects_completed",
        completed_ttl_seconds: int = 40 * 86400,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._redis = redis_client
        self._writer = (writer or RedisWriter(redis_client)) if redis_client is not None else None
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._local: dict[str, float] = {}
        self._lock = threading.Lock()
        self._max_local = max_local_projects
        self._completed_prefix = completed_prefix
        self._completed_ttl = completed_ttl_seconds
        self._clock = clock

    def _key(self, project_id: str) -> str:
        return f"{self._prefix}:{project_id}"

    def add(self, project_id: str, amount: float) -> None:
        """Adds ``amount`` USD to the project's cost; never waits on Redis."""
        if self._writer is None:
            with self._lock:
                if project_id not in self._local and len(self._local) >= self._max_local:
                    self._local.pop(next(iter(self._local)))  # the oldest: a project that never completed
                self._local[project_id] = self._local.get(project_id, 0.0) + amount
            return
        key, ttl = self._key(project_id), self._ttl

        def increment(pipe: Pipeline) -> None:
            pipe.incrbyfloat(key, amount)
            pipe.expire(key, ttl)

        self._writer.submit(increment)

    def flush(self, timeout: float = 5.0) -> None:
        """Waits up to ``timeout`` seconds for this process's queued additions to reach Redis."""
        if self._writer is not None:
            self._writer.flush(timeout)

    def take(self, project_id: str, timeout: float = 2.0) -> float | None:
        """The project's cost so far, forgotten once read (its completion); None when Redis did not answer (an
        unknown cost is not 0). Waits up to ``timeout`` seconds for this process's queued additions."""
        if self._redis is None or self._writer is None:
            with self._lock:
                return self._local.pop(project_id, 0.0)
        self.flush(timeout)
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(self._key(project_id))
            pipe.delete(self._key(project_id))
            value, _ = pipe.execute()
        except Exception:
            _log.debug("could not read the project's cost", exc_info=True)
            return None
        return float(value) if value is not None else 0.0

    def _completed_key(self, day: dt.date) -> str:
        return f"{self._completed_prefix}:{day.isoformat()}"

    def completed(self, project_id: str, cost_usd: float, outcome: str, trace_id: str | None) -> None:
        """Keeps the completed project for the daily summary (with Redis only); never waits on Redis."""
        if self._writer is None:
            return
        at = self._clock().astimezone(dt.UTC)
        key, ttl = self._completed_key(at.date()), self._completed_ttl
        member = json.dumps(
            {"project_id": project_id, "cost_usd": cost_usd, "outcome": outcome, "trace_id": trace_id},
            sort_keys=True,
        )
        score = at.timestamp()

        def add(pipe: Pipeline) -> None:
            pipe.zadd(key, {member: score})
            pipe.expire(key, ttl)

        self._writer.submit(add)

    def completed_between(self, start: dt.datetime, end: dt.datetime) -> list[CompletedProject]:
        """The projects that completed in [start, end), oldest first, over every process; raises if Redis does not
        answer (unknown spend is not 0) or none is configured."""
        if self._redis is None:
            raise RuntimeError("completed projects are kept in Redis; no Redis client given")
        start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        days = [start.date() + dt.timedelta(days=n) for n in range((end.date() - start.date()).days + 1)]
        pipe = self._redis.pipeline(transaction=False)
        for day in days:
            pipe.zrangebyscore(self._completed_key(day), start.timestamp(), f"({end.timestamp()}", withscores=True)
        projects = []
        for rows in pipe.execute():
            for member, score in rows:
                fields = json.loads(member)
                projects.append(
                    CompletedProject(
                        project_id=str(fields["project_id"]),
                        cost_usd=float(fields["cost_usd"]),
                        outcome=str(fields["outcome"]),
                        trace_id=fields.get("trace_id"),
                        completed_at=dt.datetime.fromtimestamp(score, dt.UTC),
                    )
                )
        return projects

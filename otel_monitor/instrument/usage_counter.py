"""Provider usage counted where calls happen, in hourly buckets in Redis, for the quota of providers with no usage API;
and the last time each provider refused a call for lack of quota (the refusal is proof the quota is exhausted)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.redis_writer import RedisWriter

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

    from otel_monitor.instrument.redis_writer import PipelineCommand

__all__ = ["UsageCounter", "ModelUsage", "DEFAULT_UNIT_COSTS"]

_UTC = dt.UTC

# Quota units one call costs, per provider and operation ("*" for any other operation). Gemini's daily limit
# counts requests; YouTube's Data API costs units per method (an upload 1600 in Google's published table,
# any other request at least 1). Configuration overrides these.
DEFAULT_UNIT_COSTS: dict[str, dict[str, float]] = {
    "gemini": {"*": 1},
    "youtube": {"videos.insert": 1600, "*": 1},
}
_BUCKET_TTL_SECONDS = 40 * 86400
# A minute's per-model counts are read during that minute only; kept a little longer for a reader's late clock.
_MINUTE_TTL_SECONDS = 180
# Per-model requests a day need one day of hourly buckets (the longest day, 25 hours, and a margin).
_MODEL_DAY_TTL_SECONDS = 2 * 86400


@dataclass(frozen=True)
class ModelUsage:
    """One model's counts across every process: requests and input tokens in the current minute (UTC), and
    requests from ``since`` (the day's window start) through now."""

    requests_this_minute: float
    tokens_this_minute: float
    requests_since: float


def _refusals_key(prefix: str) -> str:
    return f"{prefix}:refused"


def _bucket(at: dt.datetime) -> str:
    return at.astimezone(_UTC).strftime("%Y%m%d%H")


def _minute_key(prefix: str, service: str, model: str, at: dt.datetime) -> str:
    return f"{prefix}:{service}:model:{model}:minute:{at.astimezone(_UTC).strftime('%Y%m%d%H%M')}"


def _models_key(prefix: str, service: str) -> str:
    return f"{prefix}:{service}:models"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class UsageCounter:
    """Adds the quota units of each call to ``<prefix>:<service>`` hash fields named by UTC hour.

    Every reset time of the providers (UTC midnight, Pacific midnight, the 1st of the month) is a whole UTC
    hour, so any quota window is a whole number of buckets. Recording never waits on Redis: increments go
    through a RedisWriter (``background=False`` writes at once, for tools and tests).
    """

    def __init__(
        self,
        redis_client: Redis,
        *,
        costs: Mapping[str, Mapping[str, float]] = DEFAULT_UNIT_COSTS,
        prefix: str = "otel_monitor:usage",
        clock: Callable[[], dt.datetime] = utc_now,
        background: bool = True,
        writer: RedisWriter | None = None,
    ) -> None:
        self._redis = redis_client
        self._costs = {service: dict(table) for service, table in costs.items()}
        self._prefix = prefix
        self._clock = clock
        self._writer = (writer or RedisWriter(redis_client)) if background else None

    def cost(self, service: str, operation: str) -> float:
        """Units one call of ``operation`` costs (the table's "*" for other operations; 0 without a table)."""
        table = self._costs.get(service)
        if not table:
            return 0.0
        return float(table.get(operation, table.get("*", 0)))

    def record(self, service: str, units: float, at: dt.datetime | None = None) -> None:
        key, bucket = f"{self._prefix}:{service}", _bucket(at or self._clock())

        def increment(pipe: Pipeline) -> None:
            pipe.hincrbyfloat(key, bucket, units)
            pipe.expire(key, _BUCKET_TTL_SECONDS)

        self._write(increment)

    def record_model(
        self, service: str, model: str, requests: float, input_tokens: float, at: dt.datetime | None = None
    ) -> None:
        """``requests`` to ``model`` using ``input_tokens`` (what Gemini's per-minute token limit counts): added to
        the model's minute (``<prefix>:<service>:model:<model>:minute:<YYYYmmddHHMM>``, expiring after 3 minutes)
        and to its hourly buckets (for requests per day); the model joins ``<prefix>:<service>:models``."""
        at = at or self._clock()
        minute = _minute_key(self._prefix, service, model, at)
        hours = f"{self._prefix}:{service}:model:{model}"
        models = _models_key(self._prefix, service)

        def increment(pipe: Pipeline) -> None:
            pipe.hincrbyfloat(minute, "requests", requests)
            if input_tokens:
                pipe.hincrbyfloat(minute, "tokens", input_tokens)
            pipe.expire(minute, _MINUTE_TTL_SECONDS)
            pipe.hincrbyfloat(hours, _bucket(at), requests)
            pipe.expire(hours, _MODEL_DAY_TTL_SECONDS)
            pipe.sadd(models, model)
            pipe.expire(models, _MODEL_DAY_TTL_SECONDS)

        self._write(increment)

    def models(self, service: str) -> set[str]:
        """The models of ``service`` called within the last two days, as recorded by ``record_model``."""
        return {_text(name) for name in self._redis.smembers(_models_key(self._prefix, service))}

    def model_usage(self, service: str, model: str, since: dt.datetime, until: dt.datetime | None = None) -> ModelUsage:
        """``model``'s counts in the minute of ``until`` (now by default), its requests from the hour of ``since``."""
        until = until or self._clock()
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(_minute_key(self._prefix, service, model, until), ["requests", "tokens"])
        pipe.hgetall(f"{self._prefix}:{service}:model:{model}")
        (requests, tokens), hours = pipe.execute()
        first, last = _bucket(since), _bucket(until)
        today = sum(float(value) for field, value in hours.items() if first <= _text(field) <= last)
        return ModelUsage(float(requests or 0), float(tokens or 0), today)

    def record_refusal(self, service: str, at: dt.datetime | None = None) -> None:
        """The provider refused a call for lack of quota or credits (``<SERVICE>_QUOTA_EXCEEDED``) at ``at``.

        One sorted set member per provider, scored with the epoch seconds of its latest refusal: ``ZADD GT`` keeps
        the latest whatever order the processes' writes arrive in. Never waits on Redis (background writer).
        """
        key = _refusals_key(self._prefix)
        score = (at or self._clock()).timestamp()

        def mark(pipe: Pipeline) -> None:
            pipe.zadd(key, {service: score}, gt=True)
            pipe.expire(key, _BUCKET_TTL_SECONDS)

        self._write(mark)

    def _write(self, update: PipelineCommand) -> None:
        """Queues ``update(pipe)`` for the background writer, or runs it now when there is none (the monitor)."""
        if self._writer is not None:
            self._writer.submit(update)
            return
        pipe = self._redis.pipeline(transaction=False)
        update(pipe)
        pipe.execute()

    def refused_at(self, service: str) -> dt.datetime | None:
        """When ``service`` last refused a call for lack of quota, as far as Redis knows (None: never, or expired)."""
        score = self._redis.zscore(_refusals_key(self._prefix), service)
        return None if score is None else dt.datetime.fromtimestamp(float(score), _UTC)

    def flush(self, timeout: float = 5.0) -> None:
        """Waits until every queued increment is written, at most ``timeout`` seconds."""
        if self._writer is not None:
            self._writer.flush(timeout)

    def used(self, service: str, since: dt.datetime, until: dt.datetime | None = None) -> float:
        """Units recorded for ``service`` from the hour of ``since`` through the hour of ``until`` (now by default)."""
        until = until or self._clock()
        first, last = _bucket(since), _bucket(until)
        fields = self._redis.hgetall(f"{self._prefix}:{service}")
        total = 0.0
        for field, value in fields.items():
            name = _text(field)
            if first <= name <= last:
                total += float(value)
        return total

"""Provider usage counted where calls happen, in hourly buckets in Redis, for the quota of providers with no usage API."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Mapping

__all__ = ["UsageCounter", "DEFAULT_UNIT_COSTS"]

_log = logging.getLogger(__name__)
_UTC = dt.timezone.utc

# Quota units one call costs, per provider and operation ("*" for any other operation). Gemini's daily limit
# counts requests; YouTube's Data API costs units per method (an upload 1600 in Google's published table,
# any other request at least 1). Configuration overrides these.
DEFAULT_UNIT_COSTS: dict[str, dict[str, float]] = {
    "gemini": {"*": 1},
    "youtube": {"videos.insert": 1600, "*": 1},
}
_BUCKET_TTL_SECONDS = 40 * 86400


def _bucket(at: dt.datetime) -> str:
    return at.astimezone(_UTC).strftime("%Y%m%d%H")


class UsageCounter:
    """Adds the quota units of each call to ``<prefix>:<service>`` hash fields named by UTC hour.

    Every reset time of the providers (UTC midnight, Pacific midnight, the 1st of the month) is a whole UTC
    hour, so any quota window is a whole number of buckets. Recording never waits on Redis: increments are
    queued and written by a background thread (bounded queue; overflow is counted and logged, not waited for).
    """

    def __init__(self, redis_client, *, costs: Mapping[str, Mapping[str, float]] = DEFAULT_UNIT_COSTS,
                 prefix: str = "otel_monitor:usage", clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(_UTC),
                 background: bool = True, max_queued: int = 10_000) -> None:
        self._redis = redis_client
        self._costs = {service: dict(table) for service, table in costs.items()}
        self._prefix = prefix
        self._clock = clock
        self.dropped = 0
        self._queue: queue.Queue | None = queue.Queue(max_queued) if background else None
        self._writer: threading.Thread | None = None

    def cost(self, service: str, operation: str) -> float:
        table = self._costs.get(service)
        if not table:
            return 0.0
        return float(table.get(operation, table.get("*", 0)))

    def record_call(self, service: str, operation: str) -> None:
        """Counts one call's units; free for providers without a cost table (their usage is polled)."""
        units = self.cost(service, operation)
        if units:
            self.record(service, units)

    def record(self, service: str, units: float, at: dt.datetime | None = None) -> None:
        item = (service, _bucket(at or self._clock()), units)
        if self._queue is None:
            self._write([item])
            return
        self._ensure_writer()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _ensure_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():  # also after a fork
            self._writer = threading.Thread(target=self._drain, name="otel-monitor-usage", daemon=True)
            self._writer.start()

    def _drain(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < 500:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(items)
            for _ in items:
                self._queue.task_done()

    def _write(self, items) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for service, bucket, units in items:
                key = f"{self._prefix}:{service}"
                pipe.hincrbyfloat(key, bucket, units)
                pipe.expire(key, _BUCKET_TTL_SECONDS)
            pipe.execute()
        except Exception as exc:  # usage is best effort; the host call already happened
            _log.warning("usage counter: could not write %d increments to Redis (%s)", len(items), type(exc).__name__)

    def flush(self) -> None:
        """Waits until every queued increment is written."""
        if self._queue is not None and self._writer is not None and self._writer.is_alive():
            self._queue.join()

    def used(self, service: str, since: dt.datetime, until: dt.datetime | None = None) -> float:
        """Units recorded for ``service`` from the hour of ``since`` through the hour of ``until`` (now by default)."""
        until = until or self._clock()
        first, last = _bucket(since), _bucket(until)
        fields = self._redis.hgetall(f"{self._prefix}:{service}")
        total = 0.0
        for field, value in fields.items():
            name = field.decode() if isinstance(field, bytes) else field
            if first <= name <= last:
                total += float(value)
        return total

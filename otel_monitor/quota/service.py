"""QuotaService: the quota sources, the monitor, the store, the poller and the gauges, built from QuotaConfig."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx

from otel_monitor.error_codes import SystemErrorCode
from otel_monitor.quota.balances import DidCreditsPoller, StabilityBalancePoller
from otel_monitor.quota.config import QuotaConfig, QuotaThresholds
from otel_monitor.quota.forecast import forecast_exhaustion
from otel_monitor.quota.metrics import register_quota_metrics
from otel_monitor.quota.monitor import QuotaMonitor, iso_utc, service_key
from otel_monitor.quota.scheduler import PollScheduler
from otel_monitor.quota.status import quota_status, usage_ratio
from otel_monitor.quota.store import QuotaStore, QuotaStoreError, UsageSample
from otel_monitor.quota.usage import BalanceQuotaSource, CounterQuotaSource, QuotaReading, QuotaSource
from otel_monitor.redaction import default_scrubber
from otel_monitor.services import DEFAULT_PROVIDERS, SERVICE_KEYS
from otel_monitor.structured_logging import StructuredLogger

__all__ = ["QuotaView", "QuotaService"]

_log = StructuredLogger("otel_monitor.quota.service")
_UTC = dt.timezone.utc
_JSON_KEYS = {p.key: p.json_key for p in DEFAULT_PROVIDERS}


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    value = round(float(value), 2)
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class QuotaView:
    """A provider's quota as shown: the reading, its share, status and forecast."""

    service: str
    used: float | None
    total: float | None
    unit: str
    percentage: float | None
    status: str
    reset_date: dt.datetime | None
    forecast_exhausted_at: dt.datetime | None
    stale: bool
    error_code: str | None
    read_at: dt.datetime

    def as_json(self) -> dict:
        """The spec's entry (used, total, percentage, reset_date, status) and this project's extras."""
        return {
            "used": _number(self.used),
            "total": _number(self.total),
            "percentage": _number(self.percentage),
            "reset_date": iso_utc(self.reset_date),
            "status": self.status,
            "unit": self.unit,
            "forecast_exhausted_at": iso_utc(self.forecast_exhausted_at),
            "stale": self.stale,
            "error_code": self.error_code,
        }


class QuotaService:
    """Polls each source at its interval (each poll is a QuotaMonitor check: logged and stored) and answers the
    quota report; start() and stop() with the host app. Nothing here raises into the host but the report's
    QuotaStoreError, which the router turns into a 503."""

    def __init__(self, store: QuotaStore, sources: Mapping[str, QuotaSource], *,
                 poll_intervals: Mapping[str, float] | None = None, thresholds: QuotaThresholds | None = None,
                 monitor: QuotaMonitor | None = None, meter_provider=None,
                 forecast_lookback: dt.timedelta = dt.timedelta(hours=3),
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(_UTC),
                 sleep: Callable[[float], object] = asyncio.sleep, closers: Iterable = ()) -> None:
        self.store = store
        self.sources = {service_key(name): source for name, source in sources.items()}
        self.thresholds = thresholds or QuotaThresholds()
        self.monitor = monitor or QuotaMonitor(store, thresholds=self.thresholds, clock=clock,
                                               reset_rules={k: s.rule for k, s in self.sources.items()})
        self._clock = clock
        self._lookback = forecast_lookback
        self._latest: dict[str, QuotaView] = {}
        self._closers = list(closers)
        intervals = dict(poll_intervals or {})
        self.scheduler = PollScheduler(
            {key: (intervals[key], self._poller(key)) for key in self.sources if key in intervals}, sleep=sleep)
        register_quota_metrics(self.latest, meter_provider=meter_provider, clock=clock)

    @classmethod
    def from_config(cls, config: QuotaConfig, meter_provider=None, *, redis_client=None,
                    http_client: httpx.AsyncClient | None = None,
                    clock: Callable[[], dt.datetime] | None = None) -> QuotaService:
        """Store, sources, scheduler and gauges as configured; connects nothing until used."""
        from otel_monitor.usage_counter import UsageCounter

        clock = clock or (lambda: dt.datetime.now(_UTC))
        closers = []
        if redis_client is None and config.redis_url is not None:
            import redis

            redis_client = redis.Redis.from_url(config.redis_url, socket_connect_timeout=2, socket_timeout=2)
            closers.append(redis_client.close)
        counter = UsageCounter(redis_client, prefix=config.usage_prefix, background=False, clock=clock) \
            if redis_client is not None else None
        for secret in (config.d_id.api_key, config.stability.api_key):
            if secret is not None:
                default_scrubber.register(secret.get_secret_value())
        options = {"client": http_client, "timeout": config.request_timeout_seconds, "clock": clock}
        did = DidCreditsPoller(config.d_id.base_url, config.d_id.api_key, total=config.d_id.total, **options)
        stability = StabilityBalancePoller(config.stability.base_url, config.stability.api_key,
                                           baseline=config.stability.baseline, **options)
        closers += [did.aclose, stability.aclose]
        sources = {
            "gemini": CounterQuotaSource("gemini", counter, config.gemini.total, config.gemini.reset.rule(),
                                         "requests"),
            "stability": BalanceQuotaSource(stability, config.stability.reset.rule()),
            "d-id": BalanceQuotaSource(did, config.d_id.reset.rule()),
            "youtube": CounterQuotaSource("youtube", counter, config.youtube.total, config.youtube.reset.rule(),
                                          "units"),
        }
        intervals = {key: config.provider(key).poll_interval_seconds for key in SERVICE_KEYS} if config.poll else {}
        return cls(QuotaStore(config.store_url), sources, poll_intervals=intervals, thresholds=config.thresholds,
                   meter_provider=meter_provider, forecast_lookback=dt.timedelta(hours=config.forecast_lookback_hours),
                   clock=clock, closers=closers)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Migrates the store (a failure is logged; the report answers 503 until the store works) and starts polling."""
        try:
            await self.store.executor.run(self.store.migrate)
            await self._seed_baselines()
        except QuotaStoreError as error:
            self._log_store_error(error)
        await self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        for close in self._closers:
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                pass
        try:  # close waits for the store's lock: behind a call hanging on the database, only a few seconds
            await self.store.executor.shutdown_after(self.store.close)
        except QuotaStoreError as error:
            self._log_store_error(error)
        except TimeoutError:
            _log.warning("Quota store still busy with its database; left behind", store=self.store.name)

    async def _seed_baselines(self) -> None:
        source = self.sources.get("stability")
        poller = getattr(source, "poller", None)
        if isinstance(poller, StabilityBalancePoller):
            last = await self.store.executor.run(self.store.latest, "stability")
            poller.seed_baseline(last.total if last else None)

    # -- polling --------------------------------------------------------------------------------------------------
    def _poller(self, key: str):
        async def poll() -> QuotaView:
            return await self.poll(key)

        return poll

    async def poll(self, service: str) -> QuotaView:
        """Reads the source now and checks the result (logged, stored); the view is what the gauges show."""
        key = service_key(service)
        reading = await self.sources[key].read(self._clock(), refresh=True)
        if reading.used is not None and reading.total:
            await self.monitor.check_quota(key, reading.used, reading.total, reset_date=reading.reset_date)
        try:
            history = await self._history(reading)
        except QuotaStoreError:
            history = []  # already logged by the check; the forecast falls back on the window so far
        view = self._view(reading, history)
        self._latest[key] = view
        return view

    def latest(self) -> list[QuotaView]:
        """The last view of each service (what the gauges report)."""
        return list(self._latest.values())

    # -- report ---------------------------------------------------------------------------------------------------
    async def report(self, service: str | None = None, history_hours: int | None = None) -> dict:
        """The body of ``GET /api/v1/system/quota``; raises QuotaStoreError when the store cannot be read."""
        now = self._clock()
        keys = [service_key(service)] if service else list(self.sources)
        readings = await asyncio.gather(*(self.sources[k].read(now, refresh=False) for k in keys))
        quotas: dict[str, dict] = {}
        try:
            for reading in readings:
                view = self._view(reading, await self._history(reading))
                self._latest[reading.service] = view
                entry = view.as_json()
                if history_hours is not None:
                    samples = await self.store.executor.run(self.store.history, reading.service,
                                                            now - dt.timedelta(hours=history_hours), now)
                    entry["history"] = [_sample_json(s) for s in samples]
                quotas[_JSON_KEYS[reading.service]] = entry
        except QuotaStoreError as error:
            self._log_store_error(error)
            raise
        return {"timestamp": iso_utc(now, milliseconds=True), "quotas": quotas}

    # -- internals ------------------------------------------------------------------------------------------------
    async def _history(self, reading: QuotaReading) -> list[UsageSample]:
        since = reading.read_at - self._lookback
        if reading.window_start is not None:
            since = max(since, reading.window_start)
        return await self.store.executor.run(self.store.history, reading.service, since, reading.read_at)

    def _view(self, reading: QuotaReading, history: list[UsageSample]) -> QuotaView:
        ratio = usage_ratio(reading.used, reading.total) if reading.used is not None and reading.total else None
        forecast = None
        if ratio is not None:
            forecast = forecast_exhaustion(reading.used, reading.total, reading.read_at,
                                           [(s.timestamp, s.used) for s in history],
                                           window_start=reading.window_start, next_reset=reading.reset_date,
                                           lookback=self._lookback)
        return QuotaView(reading.service, reading.used, reading.total, reading.unit,
                         None if ratio is None else ratio * 100, quota_status(ratio, self.thresholds),
                         reading.reset_date, forecast, reading.stale, reading.error_code, reading.read_at)

    @staticmethod
    def _log_store_error(error: QuotaStoreError) -> None:
        _log.error("Quota store unavailable", store=error.store, reason=error.reason,
                   error_code=SystemErrorCode.DATABASE_CONNECTION_FAILED.value)


def _sample_json(sample: UsageSample) -> dict:
    return {"timestamp": iso_utc(sample.timestamp), "used": _number(sample.used), "total": _number(sample.total),
            "percentage": _number(sample.percentage)}

"""QuotaService: the quota sources, the monitor, the store, the poller and the gauges, built from QuotaConfig.

Freshness: every answer reads the counted quotas and the providers' refusals anew, and so does a background pass
every ``refresh_interval`` for the gauges (no provider request); a polled balance older than its ``stale_after`` is
re-read when the endpoint (waiting a bounded time) or a rule (through ``latest()``, in the background) asks; a quota
past 80 % is polled at least every 15 minutes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from opentelemetry.metrics import MeterProvider

from otel_monitor._utc_time import iso_utc, utc_now
from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.instrument.providers import DEFAULT_PROVIDERS, SERVICE_KEYS
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.quota.balances import BalancePoller, DidCreditsPoller, PollerOptions, StabilityBalancePoller
from otel_monitor.monitor.quota.config import HOURLY, QUARTER_HOURLY, QuotaConfig, QuotaThresholds, ResetSchedule
from otel_monitor.monitor.quota.forecast import forecast_exhaustion
from otel_monitor.monitor.quota.metrics import register_model_limit_metrics, register_quota_metrics
from otel_monitor.monitor.quota.model_limits import ModelLimit, ModelLimitsSource, models_json
from otel_monitor.monitor.quota.monitor import QuotaMonitor, service_key
from otel_monitor.monitor.quota.scheduler import PollScheduler
from otel_monitor.monitor.quota.status import CRITICAL, EXCEEDED, WARNING, quota_status, usage_ratio
from otel_monitor.monitor.quota.store import QuotaStore, QuotaStoreError, UsageSample
from otel_monitor.monitor.quota.usage import BalanceQuotaSource, CounterQuotaSource, QuotaReading, QuotaSource
from otel_monitor.monitor.task_stopping import cancel_and_wait
from otel_monitor.redaction.scrubber import default_scrubber

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["QuotaView", "QuotaService"]

_log = StructuredLogger("otel_monitor.quota.service")
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
    refused_at: dt.datetime | None = None
    credits_expire: bool = False
    expires_at: dt.datetime | None = None

    def as_json(self) -> dict:
        """The endpoint's entry (used, total, percentage, reset_date, status) and the extras of this project; a
        provider whose credits expire (D-ID) also has ``expires_at``, the nearest expiry of unspent credits."""
        entry = {
            "used": _number(self.used),
            "total": _number(self.total),
            "percentage": _number(self.percentage),
            "reset_date": iso_utc(self.reset_date),
            "status": self.status,
            "unit": self.unit,
            "forecast_exhausted_at": iso_utc(self.forecast_exhausted_at),
            "stale": self.stale,
            "error_code": self.error_code,
            "refused_at": iso_utc(self.refused_at),
        }
        if self.credits_expire:
            entry["expires_at"] = iso_utc(self.expires_at)
        return entry


class QuotaService:
    """Polls each source at its interval (each poll is a QuotaMonitor check: logged and stored) and answers the
    quota report; start() and stop() with the host app. Nothing here raises into the host but the report's
    QuotaStoreError, which the router turns into a 503.

    A quota at or past the warning threshold (80 %) is polled every ``high_usage_interval`` seconds at most (15
    minutes). A provider's refusal for lack of quota makes its view exceeded from the next answer on; the first such
    view is checked like a poll (logged "Quota critical", stored).
    """

    def __init__(
        self,
        store: QuotaStore,
        sources: Mapping[str, QuotaSource],
        *,
        poll_intervals: Mapping[str, float] | None = None,
        thresholds: QuotaThresholds | None = None,
        monitor: QuotaMonitor | None = None,
        meter_provider: MeterProvider | None = None,
        forecast_lookback: dt.timedelta = dt.timedelta(hours=3),
        clock: Callable[[], dt.datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        closers: Iterable[Callable[[], object]] = (),
        high_usage_interval: float = QUARTER_HOURLY,
        refresh_interval: float | None = None,
        model_limits: ModelLimitsSource | None = None,
    ) -> None:
        self.store = store
        self.model_limits = model_limits
        self.sources = {service_key(name): source for name, source in sources.items()}
        self.thresholds = thresholds or QuotaThresholds()
        self.monitor = monitor or QuotaMonitor(
            store, thresholds=self.thresholds, clock=clock, reset_rules={k: s.rule for k, s in self.sources.items()}
        )
        self._clock = clock
        self._lookback = forecast_lookback
        self._latest: dict[str, QuotaView] = {}
        # The refusal each service's exceeded view was checked (logged, stored) for; gone once the figures stand.
        self._refusal_checked: dict[str, dt.datetime] = {}
        self._background: asyncio.Future | None = None
        self._sleep = sleep
        self._refresh_interval = refresh_interval
        self._watch: asyncio.Task | None = None
        self._closers = list(closers)
        self._intervals = {key: float(value) for key, value in (poll_intervals or {}).items()}
        self._high_usage_interval = float(high_usage_interval)
        self.scheduler = PollScheduler(
            {
                key: (functools.partial(self.poll_interval, key), self._poller(key))
                for key in self.sources
                if key in self._intervals
            },
            sleep=sleep,
        )
        # The gauges show the views as they are: an export must not cause provider requests.
        register_quota_metrics(self._views, meter_provider=meter_provider, clock=clock)
        if model_limits is not None:
            register_model_limit_metrics(lambda: model_limits.latest, meter_provider=meter_provider)

    @classmethod
    def from_config(
        cls,
        config: QuotaConfig,
        meter_provider: MeterProvider | None = None,
        *,
        redis_client: Redis | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> QuotaService:
        """Store, sources, scheduler and gauges as configured; connects nothing until used."""
        from otel_monitor.instrument.usage_counter import UsageCounter

        clock = clock or utc_now
        closers: list[Callable[[], object]] = []
        if redis_client is None and config.redis_url is not None:
            import redis

            redis_client = redis.Redis.from_url(config.redis_url, socket_connect_timeout=2, socket_timeout=2)
            closers.append(redis_client.close)
        counter = (
            UsageCounter(redis_client, prefix=config.usage_prefix, background=False, clock=clock)
            if redis_client is not None
            else None
        )
        for secret in (config.d_id.api_key, config.stability.api_key):
            if secret is not None:
                default_scrubber.register(secret.get_secret_value())
        options: PollerOptions = {"client": http_client, "timeout": config.request_timeout_seconds, "clock": clock}
        did = DidCreditsPoller(config.d_id.base_url, config.d_id.api_key, total=config.d_id.total, **options)
        stability = StabilityBalancePoller(
            config.stability.base_url, config.stability.api_key, baseline=config.stability.baseline, **options
        )
        closers += [did.aclose, stability.aclose]

        def balance(poller: BalancePoller, reset: ResetSchedule) -> BalanceQuotaSource:
            return BalanceQuotaSource(
                poller,
                reset.rule(),
                refusals=counter,
                wait=config.refresh_wait_seconds,
                stale_after=config.stale_after(poller.service),
            )

        sources: dict[str, QuotaSource] = {
            "gemini": CounterQuotaSource(
                "gemini", counter, config.gemini.total, config.gemini.reset.rule(), "requests"
            ),
            "stability": balance(stability, config.stability.reset),
            "d-id": balance(did, config.d_id.reset),
            "youtube": CounterQuotaSource(
                "youtube", counter, config.youtube.total, config.youtube.reset.rule(), "units"
            ),
        }
        intervals = {key: config.provider(key).poll_interval_seconds for key in SERVICE_KEYS} if config.poll else {}
        return cls(
            QuotaStore(config.store_url),
            sources,
            poll_intervals=intervals,
            thresholds=config.thresholds,
            meter_provider=meter_provider,
            forecast_lookback=dt.timedelta(hours=config.forecast_lookback_hours),
            clock=clock,
            closers=closers,
            high_usage_interval=config.high_usage_poll_interval_seconds,
            refresh_interval=config.refresh_interval_seconds if config.poll else None,
            model_limits=ModelLimitsSource(
                "gemini",
                counter,
                {name: ModelLimit(**limits.model_dump()) for name, limits in config.gemini.models.items()},
            ),
        )

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Migrates the store (a failure is logged; the report answers 503 until the store works) and starts polling."""
        try:
            await self.store.executor.run(self.store.migrate)
            await self._seed_baselines()
        except QuotaStoreError as error:
            self._log_store_error(error)
        await self.scheduler.start()
        if self._refresh_interval is not None and self._watch is None:
            self._watch = asyncio.create_task(self._watch_loop(self._refresh_interval), name="quota-refresh")

    async def stop(self) -> None:
        await self.scheduler.stop()
        await cancel_and_wait(self._watch, self._background)
        self._watch = None
        for source in self.sources.values():
            cancel = getattr(source, "cancel", None)
            if cancel is not None:
                await cancel()
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
    def _poller(self, key: str) -> Callable[[], Awaitable[QuotaView]]:
        async def poll() -> QuotaView:
            return await self.poll(key)

        return poll

    def poll_interval(self, service: str) -> float:
        """Seconds until the next scheduled poll of ``service``: its configured interval, at most
        ``high_usage_interval`` once its last view is at or past the warning threshold (80 %)."""
        key = service_key(service)
        interval = self._intervals.get(key, HOURLY)
        view = self._latest.get(key)
        if view is not None and view.status in (WARNING, CRITICAL, EXCEEDED):
            return min(interval, self._high_usage_interval)
        return interval

    async def poll(self, service: str) -> QuotaView:
        """Reads the source now and checks the result (logged, stored); the view is what the gauges show."""
        key = service_key(service)
        reading = await self.sources[key].read(self._clock(), refresh=True)
        if reading.used is not None and reading.total:
            self._note_refusal(key, reading.refused_at)
            await self.monitor.check_quota(
                key, reading.used, reading.total, reset_date=reading.reset_date, refused_at=reading.refused_at
            )
        try:
            history = await self._history(reading)
        except QuotaStoreError:
            history = []  # already logged by the check; the forecast falls back on the window so far
        view = self._view(reading, history)
        self._latest[key] = view
        return view

    def latest(self) -> list[QuotaView]:
        """The last view of each service, at once (what rules and the daily summary read). Called on the event loop,
        it also starts one background refresh (unless one runs): counted quotas and refusals read anew, balances
        older than their ``stale_after`` re-read; its views are what the next call returns."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._views()
        if self._background is None or self._background.done():
            self._background = asyncio.ensure_future(self.refresh())
        return self._views()

    async def refresh(self, *, stale_ok: bool = False) -> list[QuotaView]:
        """Every service's view brought up to date as ``report()`` would (store errors logged, not raised); with
        ``stale_ok`` without re-reading stale balances (counted quotas and refusals only: no provider request)."""
        now = self._clock()
        views = await asyncio.gather(
            *(self._current(key, now, stale_ok=stale_ok) for key in self.sources), return_exceptions=True
        )
        if self.model_limits is not None:
            await self.model_limits.read(now)
        for key, view in zip(self.sources, views, strict=False):
            if isinstance(view, QuotaStoreError):
                self._log_store_error(view)
            elif isinstance(view, BaseException) and not isinstance(view, asyncio.CancelledError):
                _log.error("Quota refresh failed", service=key, reason=f"{type(view).__name__}: {view}"[:300])
        return [view for view in views if isinstance(view, QuotaView)]

    def _views(self) -> list[QuotaView]:
        return list(self._latest.values())

    async def _watch_loop(self, interval: float) -> None:
        while True:
            await self._sleep(interval)
            try:
                await self.refresh(stale_ok=True)
            except Exception as exc:  # the next pass tries again
                _log.error("Quota refresh failed", reason=f"{type(exc).__name__}: {exc}"[:300])

    # -- report ---------------------------------------------------------------------------------------------------
    async def report(self, service: str | None = None, history_hours: int | None = None) -> dict:
        """The body of ``GET /api/v1/system/quota``; raises QuotaStoreError when the store cannot be read. Asked for
        Gemini alone, its entry adds ``models``: each model's limits (``{model: {limit: {used, total, percentage,
        status, reset_date}}}``)."""
        now = self._clock()
        keys = [service_key(service)] if service else list(self.sources)
        quotas: dict[str, dict] = {}
        try:
            views = await asyncio.gather(*(self._current(key, now) for key in keys))
            for view in views:
                entry = view.as_json()
                if history_hours is not None:
                    samples = await self.store.executor.run(
                        self.store.history, view.service, now - dt.timedelta(hours=history_hours), now
                    )
                    entry["history"] = [_sample_json(s) for s in samples]
                if service and view.service == "gemini" and self.model_limits is not None:
                    entry["models"] = models_json(await self.model_limits.read(now), self.thresholds)
                quotas[_JSON_KEYS[view.service]] = entry
        except QuotaStoreError as error:
            self._log_store_error(error)
            raise
        return {"timestamp": iso_utc(now, milliseconds=True), "quotas": quotas}

    # -- internals ------------------------------------------------------------------------------------------------
    async def _current(self, key: str, now: dt.datetime, *, stale_ok: bool = False) -> QuotaView:
        """The view of ``key`` now, without a forced poll (a stale balance is re-read unless ``stale_ok``); the first
        view a refusal makes exceeded is checked (logged "Quota critical", stored). Raises QuotaStoreError from the
        history."""
        reading = await self.sources[key].read(now, refresh=False, stale_ok=stale_ok)
        if reading.used is not None and reading.total and self._note_refusal(key, reading.refused_at):
            await self.monitor.check_quota(
                key, reading.used, reading.total, reset_date=reading.reset_date, refused_at=reading.refused_at
            )
        view = self._view(reading, await self._history(reading))
        self._latest[key] = view
        return view

    def _note_refusal(self, key: str, refused_at: dt.datetime | None) -> bool:
        """Whether this reading is the first made exceeded by a refusal since the figures last stood on their own."""
        if refused_at is None:
            self._refusal_checked.pop(key, None)
            return False
        if key in self._refusal_checked:
            return False
        self._refusal_checked[key] = refused_at
        return True

    async def _history(self, reading: QuotaReading) -> list[UsageSample]:
        since = reading.read_at - self._lookback
        if reading.window_start is not None:
            since = max(since, reading.window_start)
        return await self.store.executor.run(self.store.history, reading.service, since, reading.read_at)

    def _view(self, reading: QuotaReading, history: list[UsageSample]) -> QuotaView:
        ratio = None
        forecast = None
        if reading.used is not None and reading.total:
            ratio = usage_ratio(reading.used, reading.total)
            forecast = forecast_exhaustion(
                reading.used,
                reading.total,
                reading.read_at,
                [(s.timestamp, s.used) for s in history],
                window_start=reading.window_start,
                next_reset=reading.reset_date,
                lookback=self._lookback,
            )
        return QuotaView(
            reading.service,
            reading.used,
            reading.total,
            reading.unit,
            None if ratio is None else ratio * 100,
            quota_status(ratio, self.thresholds),
            reading.reset_date,
            forecast,
            reading.stale,
            reading.error_code,
            reading.read_at,
            reading.refused_at,
            reading.credits_expire,
            reading.expires_at,
        )

    @staticmethod
    def _log_store_error(error: QuotaStoreError) -> None:
        _log.error(
            "Quota store unavailable",
            store=error.store,
            reason=error.reason,
            error_code=SystemErrorCode.DATABASE_CONNECTION_FAILED.value,
        )


def _sample_json(sample: UsageSample) -> dict:
    return {
        "timestamp": iso_utc(sample.timestamp),
        "used": _number(sample.used),
        "total": _number(sample.total),
        "percentage": _number(sample.percentage),
    }

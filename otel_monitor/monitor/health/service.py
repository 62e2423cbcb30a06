"""Runs the health checks concurrently under a timeout, caches the report, refreshes it in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from otel_monitor._utc_time import epoch_iso_utc
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.health.checks import HealthCheck, checks_from_config, describe_error
from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.monitor.health.metrics import HealthMetrics
from otel_monitor.monitor.health.status import DEGRADED, HEALTHY, UNHEALTHY, aggregate_status
from otel_monitor.monitor.task_stopping import cancel_and_wait
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["HealthService"]

Report = dict[str, Any]


class HealthService:
    """The health report of the backend: ``{"status", "timestamp", "checks": {name: result}}``.

    ``report()`` answers from the cache while it is younger than ``ttl`` (``clock`` is epoch seconds); ``refresh()``
    runs the checks now. Runs are single-flight: callers arriving during a run wait for that run. ``start()``
    begins a background task refreshing every ``ttl``; ``stop()`` ends it. Each check gets ``timeout`` seconds, a
    check that does not answer in time is unhealthy ("timed out after 1.0 s"), and a check that raises is
    unhealthy too: nothing a check does reaches the caller. Status changes of a check are logged once (ERROR when
    it becomes unhealthy, WARNING degraded, INFO when it recovers), with the check's P0 error code.

    Metrics go to ``meter_provider`` (the global one when None, as OpenTelemetry instrumentations do): the last
    report, the open connections the database check (any check with ``open_connections``) last counted, and the
    host's CPU and memory, read at each collection (see ``metrics.py``).
    """

    def __init__(
        self,
        checks: Sequence[HealthCheck],
        *,
        timeout: float = 1.0,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        meter_provider: MeterProvider | None = None,
        scrubber: SecretScrubber = default_scrubber,
        logger: StructuredLogger | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        names = [check.name for check in checks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"check names must be unique; repeated: {duplicates}")
        if timeout <= 0 or ttl <= 0:
            raise ValueError("timeout and ttl must be positive")
        self._checks = list(checks)
        self._timeout = timeout
        self._ttl = ttl
        self._clock = clock
        self._sleep = sleep
        self._scrubber = scrubber
        self._log = logger or StructuredLogger("otel_monitor.health")
        self._report: Report | None = None
        self._reported_at = 0.0
        self._running: asyncio.Task[Report] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._statuses: dict[str, str] = {}
        self._listeners: list[Callable[[Report], None]] = []
        counter = next((check for check in self._checks if hasattr(check, "open_connections")), None)
        HealthMetrics(
            meter_provider or metrics.get_meter_provider(),
            lambda: self._report,
            open_connections=lambda: getattr(counter, "open_connections", None),
        )

    @classmethod
    def from_config(
        cls,
        config: HealthConfig,
        meter_provider: MeterProvider | None = None,
        *,
        clock: Callable[[], float] = time.time,
        scrubber: SecretScrubber = default_scrubber,
        disk_usage_reader: Callable[[str], Any] | None = None,
    ) -> HealthService:
        """The checks the config asks for, with its timeout and cache TTL."""
        checks = checks_from_config(config, clock=clock, scrubber=scrubber, disk_usage_reader=disk_usage_reader)
        return cls(
            checks,
            timeout=config.check_timeout_seconds,
            ttl=config.cache_ttl_seconds,
            clock=clock,
            meter_provider=meter_provider,
            scrubber=scrubber,
        )

    def add_listener(self, listener: Callable[[Report], None]) -> None:
        """Calls ``listener`` with each new report, on the event loop, as soon as it is made: it must be quick; what
        it raises is logged, never passed on to the checks."""
        self._listeners.append(listener)

    @property
    def last_report(self) -> Report | None:
        """The cached report, however old; None before the first run."""
        return self._report

    async def report(self) -> Report:
        """The cached report. Once it is older than ttl a refresh starts in the background and the cached report
        is served until the new one lands (stale while revalidating), so no request waits on a slow dependency;
        only the very first report, before any exists, is awaited."""
        if self._report is None:
            return await self.refresh()
        if self._clock() - self._reported_at >= self._ttl:
            self._start_run()
        return self._report

    async def fresh_report(self, max_age: float) -> Report:
        """A report at most ``max_age`` seconds old, running the checks (joining a run in progress) if the cached
        one is older: for the alert rules, which must see a dependency die within their interval, not the TTL."""
        if self._report is not None and self._clock() - self._reported_at < max_age:
            return self._report
        return await self.refresh()

    async def refresh(self) -> Report:
        """Runs the checks now, unless a run is in progress: then its report."""
        # A caller giving up (client gone) must not cancel the run the others wait for.
        return await asyncio.shield(self._start_run())

    def _start_run(self) -> asyncio.Task[Report]:
        """The run in progress, or a new one: never two at once (no thundering herd)."""
        loop = asyncio.get_running_loop()
        run = self._running
        if run is None or run.done() or run.get_loop() is not loop:
            run = self._running = loop.create_task(self._run_checks(), name="otel-monitor-health-checks")
        return run

    async def start(self) -> None:
        """Starts refreshing in the background, now and every ttl (in the running event loop)."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_forever(), name="otel-monitor-health-refresher"
            )

    async def stop(self) -> None:
        """Stops the background refresh and a run in progress (at shutdown nothing should outlive the app)."""
        loop = asyncio.get_running_loop()
        await cancel_and_wait(*(task for task in (self._refresher, self._running) if task and task.get_loop() is loop))
        self._refresher = None

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # never expected (checks are contained); the loop must survive it anyway
                self._log.exception("Health refresh failed")
            await self._sleep(max(0.0, self._ttl - (self._clock() - self._reported_at)))

    async def _run_checks(self) -> Report:
        results = await asyncio.gather(*(self._run_check(check) for check in self._checks))
        now = self._clock()
        checks = {check.name: result for check, result in zip(self._checks, results, strict=False)}
        report = {"status": aggregate_status(checks), "timestamp": epoch_iso_utc(now), "checks": checks}
        self._report, self._reported_at = report, now
        self._log_changes(checks)
        for listener in self._listeners:
            try:
                listener(report)
            except Exception:
                self._log.exception("Health report listener failed")
        return report

    async def _run_check(self, check: HealthCheck) -> dict[str, Any]:
        try:
            result = dict(await asyncio.wait_for(check.run(), self._timeout))
        except TimeoutError:
            return self._failed(check, f"timed out after {self._timeout:.1f} s")
        except Exception as exc:
            return self._failed(check, "check failed: " + describe_error(exc, self._scrubber))
        if result.get("status") not in (HEALTHY, DEGRADED, UNHEALTHY):
            return self._failed(check, f"check returned status {result.get('status')!r}")
        if result.get("error") is not None:
            result["error"] = describe_error(str(result["error"]), self._scrubber)
        return result

    @staticmethod
    def _failed(check: HealthCheck, error: str) -> dict[str, Any]:
        failed = getattr(check, "failed", None)
        return dict(failed(error)) if callable(failed) else {"status": UNHEALTHY, "error": error}

    def _log_changes(self, checks: dict[str, dict[str, Any]]) -> None:
        for check in self._checks:
            result = checks[check.name]
            status, previous = result["status"], self._statuses.get(check.name, HEALTHY)
            self._statuses[check.name] = status
            if status == previous:
                continue
            code = getattr(check, "error_code", None)
            fields = {
                "check": check.name,
                "status": status,
                "previous_status": previous,
                "error_code": getattr(code, "value", code),
                "error": result.get("error"),
            }
            if status == UNHEALTHY:
                self._log.error(f"Health check {check.name} unhealthy", **fields)
            elif status == DEGRADED:
                self._log.warning(f"Health check {check.name} degraded", **fields)
            else:
                self._log.info(f"Health check {check.name} recovered", **{**fields, "error_code": None})

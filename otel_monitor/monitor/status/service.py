"""The status page's service: counts each health run, provider and outside probe into the uptime history, refreshes
the providers' metrics and the probes, and publishes a ``{"type": "status"}`` message on its WebSocket hub whenever a
component or the alerts change."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from otel_monitor.instrument.providers import ProviderRegistry
from otel_monitor.instrument.redis_client import telemetry_redis
from otel_monitor.instrument.spend_ledger import SpendLedger
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.notifiers.websocket import WebSocketHub
from otel_monitor.monitor.alerting.silences.model import SilenceState
from otel_monitor.monitor.alerting.silences.router import silence_views
from otel_monitor.monitor.budgets import read_spend
from otel_monitor.monitor.status.collect import StatusCollector, check_state, outside_component, provider_component
from otel_monitor.monitor.status.model import DOWN, UNKNOWN, Spend, StatusSummary, worst_state
from otel_monitor.monitor.status.provider_metrics import ProviderMetricsReader
from otel_monitor.monitor.status.uptime import UptimeStore
from otel_monitor.monitor.task_stopping import cancel_and_wait

if TYPE_CHECKING:
    from otel_monitor.monitor.alerting.service import AlertingService
    from otel_monitor.monitor.config import MonitorConfig
    from otel_monitor.monitor.health.service import HealthService
    from otel_monitor.monitor.quota.service import QuotaService

__all__ = ["StatusService", "STATUS_MESSAGE_TYPE"]

STATUS_MESSAGE_TYPE = "status"
# Unresolved incidents the page lists with their timelines, newest first.
_MOST_INCIDENTS_SHOWN = 20
# Seconds the page waits on the backend's Redis for the spend (connect and answer); the rest of the page never waits.
_SPEND_READ_TIMEOUT_SECONDS = 0.5
_log = StructuredLogger("otel_monitor.status")


class StatusService:
    """Runs with the app. ``on_health_report`` is the health service's listener: it only counts and wakes the
    publisher (cheap, never raises). Every ``live_interval`` seconds (or at once when woken) the in-memory state is
    compared with the last one published and the differences go to ``hub``; the providers' metrics are read every
    ``provider_interval``, the uptime counts written every ``flush_interval``."""

    def __init__(
        self,
        collector: StatusCollector,
        hub: WebSocketHub,
        *,
        uptime_store: UptimeStore | None = None,
        live_interval: float = 1.0,
        provider_interval: float = 30.0,
        flush_interval: float = 60.0,
    ) -> None:
        self.collector = collector
        self.hub = hub
        self._store = uptime_store
        self._live_interval = live_interval
        self._provider_interval = provider_interval
        self._flush_interval = flush_interval
        self._published: dict[str, Any] | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_config(
        cls,
        config: MonitorConfig,
        health: HealthService,
        quota: QuotaService,
        alerting: AlertingService | None,
    ) -> StatusService:
        """Over the app's services: the providers' metrics from ``alerting.prometheus_url``, the uptime history in
        ``alerting.store_url``; alerts, incidents and active silences from ``alerting`` (none while it is off)."""
        store = UptimeStore(config.alerting.store_url) if config.alerting.store_url else None

        async def open_incidents() -> list[dict[str, Any]]:
            if alerting is None:
                return []
            return [
                {**incident.to_json(), "timeline": [event.to_json() for event in incident.timeline]}
                for incident in await alerting.unresolved_incidents(limit=_MOST_INCIDENTS_SHOWN)
            ]

        async def active_silences() -> list[dict[str, Any]]:
            if alerting is None:
                return []
            views = await silence_views(alerting.silences, state=SilenceState.ACTIVE)
            return [view.model_dump(mode="json") for view in views]

        collector = StatusCollector(
            health_report=lambda: health.last_report,
            quota_views=quota.latest,
            registry=ProviderRegistry(),
            metrics_reader=ProviderMetricsReader(config.alerting.prometheus_url),
            active_alerts=alerting.alerts if alerting is not None else list,
            open_incidents=open_incidents,
            silences=active_silences,
            uptime_store=store,
            spend=_spend_reader(config),
        )
        service = cls(collector, WebSocketHub(), uptime_store=store)
        health.add_listener(service.on_health_report)
        return service

    async def summary(self) -> StatusSummary:
        return await self.collector.summary()

    # -- the health service's listener ----------------------------------------------------------------------------
    def on_health_report(self, report: Mapping[str, Any]) -> None:
        """Counts each check of the run as up (not unhealthy) or down, for today; wakes the publisher."""
        try:
            day = self.collector.clock().date()
            results = {name: check_state(result) != DOWN for name, result in report.get("checks", {}).items()}
            self.collector.uptime_counts.add(day, results)
            if self._wake is not None:
                self._wake.set()
        except Exception as exc:  # never into the check loop
            _log.warning("Status page could not count a health run", error=repr(exc)[:300])

    # -- live ----------------------------------------------------------------------------------------------------
    def live_state(self) -> dict[str, Any]:
        """What the page patches: each component's and provider's state, the active alerts, the overall state."""
        now = self.collector.clock()
        components = self.collector.components()
        providers = self.collector.providers(now)
        alerts = self.collector.alerts()
        p0_firing = any(a.priority == "P0" and a.state == "firing" for a in alerts)
        return {
            "state": worst_state(*(c.state for c in components), *(p.state for p in providers), *([DOWN] * p0_firing)),
            "components": {c.name: c.model_dump(mode="json", exclude={"uptime"}) for c in components},
            "providers": {p.key: {"key": p.key, "state": p.state} for p in providers},
            "alerts": [alert.model_dump(mode="json") for alert in alerts],
        }

    def publish_changes(self) -> dict[str, Any] | None:
        """Publishes what changed since the last message (everything the first time); the message, or None."""
        state = self.live_state()
        previous = self._published or {"state": None, "components": {}, "providers": {}, "alerts": None}
        message: dict[str, Any] = {"type": STATUS_MESSAGE_TYPE, "state": state["state"]}
        components = [c for name, c in state["components"].items() if previous["components"].get(name) != c]
        providers = [p for key, p in state["providers"].items() if previous["providers"].get(key) != p]
        if components:
            message["components"] = components
        if providers:
            message["providers"] = providers
        if state["alerts"] != previous["alerts"]:
            message["alerts"] = state["alerts"]
        if len(message) == 2 and state["state"] == previous["state"]:
            return None
        self._published = state
        self.hub.publish(json.dumps(message, sort_keys=True))
        return message

    # -- running -------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._tasks:
            return
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._publish_forever(), name="otel-monitor-status-live"),
            loop.create_task(self._providers_forever(), name="otel-monitor-status-providers"),
            loop.create_task(self._flush_forever(), name="otel-monitor-status-uptime"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        await self.flush()
        await self.collector.aclose()
        if self._store is not None:
            with contextlib.suppress(Exception):
                await self._store.executor.shutdown_after(self._store.close)

    async def flush(self) -> None:
        """Writes the uptime counted so far; kept in memory for the next try when the store fails."""
        if self._store is None:
            return
        counts = self.collector.uptime_counts.take()
        try:
            await self._store.executor.run(self._store.add, counts)
        except Exception as exc:
            self.collector.uptime_counts.restore(counts)
            _log.warning("Uptime history not written; kept for the next try", error=repr(exc)[:300])

    async def _publish_forever(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._live_interval)
            self._wake.clear()
            try:
                self.publish_changes()
            except Exception:
                _log.exception("Status update not published")

    async def _providers_forever(self) -> None:
        while True:
            try:
                await self.collector.refresh_provider_metrics()
                day = self.collector.clock().date()
                states = {p.key: p.state for p in self.collector.providers(self.collector.clock())}
                states = {provider_component(key): state for key, state in states.items()}
                states |= {
                    outside_component(service): state for service, state in self.collector.outside_probes.items()
                }
                self.collector.uptime_counts.add(
                    day, {name: state != DOWN for name, state in states.items() if state != UNKNOWN}
                )
            except Exception:
                _log.exception("Provider metrics not refreshed")
            await asyncio.sleep(self._provider_interval)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self.flush()


def _spend_reader(config: MonitorConfig) -> Callable[[dt.datetime], Awaitable[list[Spend]]] | None:
    """Spend today and this month from the backend's Redis (``quota.redis_url``), read off the event loop."""
    if not config.quota.redis_url:
        return None
    ledger = SpendLedger(telemetry_redis(config.quota.redis_url, timeout=_SPEND_READ_TIMEOUT_SECONDS))

    async def spend(now: dt.datetime) -> list[Spend]:
        lines = await asyncio.to_thread(read_spend, ledger, config.budgets, now)
        return [Spend(**asdict(line)) for line in lines]

    return spend

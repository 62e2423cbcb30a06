"""The running alerting pipeline of the monitor: rules evaluated over its sources, transitions queued and delivered."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx

from otel_monitor.alerting.delivery_config import DeliveryConfig, build_notifiers
from otel_monitor.alerting.evaluation import Evaluator
from otel_monitor.alerting.lifecycle import Transition
from otel_monitor.alerting.model import Alert, Rule
from otel_monitor.alerting.outbox import Dispatcher, Outbox
from otel_monitor.alerting.sources import CheckSource, PrometheusSource, Source, streak_trace_lookup
from otel_monitor.failure_streaks import failure_streaks_from_url
from otel_monitor.monitor_config import MonitorConfig
from otel_monitor.structured_logging import StructuredLogger

__all__ = ["AlertingService"]

_UTC = dt.timezone.utc
_log = StructuredLogger("otel_monitor.alerting.service")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


class AlertingService:
    """The Evaluator and the Dispatcher as tasks of the app; each transition goes into the outbox for the channels
    its priority is routed to, then the Dispatcher is woken.

    Alerts are not restored from the outbox on start: after a restart a condition still holding fires again
    (with the same notification id, which deduping receivers drop)."""

    def __init__(self, rules: Sequence[Rule], sources: Mapping[str, Source], outbox: Outbox, dispatcher: Dispatcher,
                 delivery: DeliveryConfig, *, clock: Callable[[], dt.datetime] = _utcnow,
                 jaeger_base: str | None = None, trace_lookup: Callable[[str], str | None] | None = None,
                 closers: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        self.outbox = outbox
        self.dispatcher = dispatcher
        self.delivery = delivery
        self.evaluator = Evaluator(rules, sources, clock, self.enqueue, jaeger_base=jaeger_base,
                                   trace_lookup=trace_lookup)
        self._closers = list(closers)
        self._stop_dispatch = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @classmethod
    def from_config(cls, config: MonitorConfig, rules: Sequence[Rule], health, quota, *,
                    clock: Callable[[], dt.datetime] = _utcnow,
                    http_client: httpx.AsyncClient | None = None) -> AlertingService:
        """Sources, outbox (``alerting.store_url``, else the quota store) and notifiers of the config."""
        alerting = config.alerting
        client = http_client or httpx.AsyncClient()
        streaks = failure_streaks_from_url(config.quota.redis_url)
        sources = {"promql": PrometheusSource(alerting.prometheus_url, http_client=client),
                   "check": CheckSource(health_service=health, quota_service=quota, streaks=streaks)}
        outbox = Outbox(alerting.outbox_url(config.quota.store_url), clock=clock)
        notifiers = build_notifiers(alerting.delivery, client=client)
        dispatcher = Dispatcher.from_config(outbox, alerting.delivery, notifiers, clock=clock)
        return cls(rules, sources, outbox, dispatcher, alerting.delivery, clock=clock,
                   jaeger_base=alerting.jaeger_url, trace_lookup=streak_trace_lookup(streaks),
                   closers=[] if http_client is not None else [client.aclose])

    def alerts(self) -> list[Alert]:
        """The pending and firing alerts now."""
        return self.evaluator.alerts()

    async def enqueue(self, alert: Alert, transition: Transition) -> None:
        """Queues the transition for the channels routed for the alert's priority and wakes the Dispatcher."""
        channels = self.delivery.channels_for(alert.priority)
        if not channels:
            _log.info("Alert transition routed to no channel", rule=alert.rule, transition=transition,
                      alert_priority=alert.priority.value)
            return
        await asyncio.to_thread(self.outbox.enqueue, alert, transition, channels)
        self.dispatcher.wake()

    async def start(self) -> None:
        """Runs the evaluator loop and the Dispatcher as tasks of the running event loop."""
        if self._tasks:
            return
        self._stop_dispatch.clear()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.evaluator.run(), name="otel-monitor-alert-evaluation"),
                       loop.create_task(self.dispatcher.run(self._stop_dispatch), name="otel-monitor-alert-delivery")]

    async def stop(self) -> None:
        """Stops both loops, then closes the HTTP client and the outbox's database connections."""
        self.evaluator.stop()
        self._stop_dispatch.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        self._tasks = []
        for close in self._closers:
            with contextlib.suppress(Exception):
                await close()
        await asyncio.to_thread(self.outbox.close)

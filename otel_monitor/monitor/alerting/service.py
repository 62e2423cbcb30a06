"""The running alerting pipeline of the monitor: rules evaluated over its sources, transitions kept, queued and
delivered, incidents opened and closed, and the heartbeat pinged."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx

from otel_monitor.monitor.alerting.alertmanager_refresh import AlertmanagerRefresher
from otel_monitor.monitor.alerting.daily_summary import DailySummary, DailySummaryConfig
from otel_monitor.monitor.alerting.delivery_config import DeliveryConfig, build_notifiers
from otel_monitor.monitor.alerting.digest import DEFAULT_DIGEST_PERIOD, DigestStore, P1Digest
from otel_monitor.monitor.alerting.evaluation import Evaluator
from otel_monitor.monitor.alerting.heartbeat import Heartbeat
from otel_monitor.monitor.alerting.incidents import Incident, IncidentStatus, IncidentStore, opens_incident
from otel_monitor.monitor.alerting.lifecycle import FIRING, RESOLVED, Transition
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority, Rule
from otel_monitor.monitor.alerting.notifiers.log_file import ALERT_LOGGER, log_notification
from otel_monitor.monitor.alerting.notifiers.notification import Notification
from otel_monitor.monitor.alerting.notifiers.websocket import WebSocketHub
from otel_monitor.monitor.alerting.outbox import Dispatcher, Outbox
from otel_monitor.monitor.alerting.quota_details import quota_details
from otel_monitor.monitor.alerting.state import DEFAULT_HISTORY_LIMIT, AlertStore
from otel_monitor.monitor.alerting.sources import CheckSource, PrometheusSource, Source, streak_trace_lookup
from otel_monitor.instrument.failure_streaks import failure_streaks_from_url
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.quota.day_windows import quota_windows_between
from otel_monitor.logs.logger import StructuredLogger

__all__ = ["AlertingService"]

_UTC = dt.timezone.utc
_log = StructuredLogger("otel_monitor.alerting.service")
_alert_log = StructuredLogger(ALERT_LOGGER)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


class _RecordingEvaluator(Evaluator):
    """The Evaluator, with ``after_pass`` awaited after each pass (pending alerts and silent changes are kept too)."""

    def __init__(self, *args, after_pass: Callable[[], Awaitable[None]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._after_pass = after_pass

    async def evaluate_once(self, now: dt.datetime | None = None):
        sent = await super().evaluate_once(now)
        await self._after_pass()
        return sent


def _recorded_key(alert: Alert) -> tuple:
    """What makes a stored alert out of date; the value alone changes on every pass and is not worth a write."""
    return alert.state, alert.ends_at, alert.trace_id, alert.inhibited


class AlertingService:
    """The Evaluator, the Dispatcher and the heartbeat as tasks of the app.

    Each notified transition is queued in the outbox for the channels its priority is routed to (first, so a crash
    right after never loses a notification), then written to the alert store and, for P0s in production, opens or
    closes an incident. After each pass the store catches up with changes that notify nobody (pending alerts,
    pending -> firing while inhibited, pending alerts dropped). On start the evaluator is restored from the store,
    so an alert firing across a restart is not announced again, and resolves once.
    """

    def __init__(self, rules: Sequence[Rule], sources: Mapping[str, Source], outbox: Outbox, dispatcher: Dispatcher,
                 delivery: DeliveryConfig, *, clock: Callable[[], dt.datetime] = _utcnow,
                 jaeger_base: str | None = None, trace_lookup: Callable[[str], str | None] | None = None,
                 state: AlertStore | None = None, incidents: IncidentStore | None = None,
                 environment: str = "development", heartbeat: Heartbeat | None = None,
                 daily_summary: DailySummary | None = None, digests: DigestStore | None = None,
                 closers: Sequence[Callable[[], Awaitable[None]]] = (),
                 websocket_hub: WebSocketHub | None = None, digest_period: dt.timedelta = DEFAULT_DIGEST_PERIOD,
                 transition_details: Callable[[Alert], Mapping[str, object]] | None = None) -> None:
        self.outbox = outbox
        self.dispatcher = dispatcher
        self.delivery = delivery
        self.state = state or AlertStore(clock=clock)
        self.incident_store = incidents or IncidentStore(clock=clock)
        self.environment = environment
        self.heartbeat = heartbeat
        # P1 transitions wait for their period's digest (kept in ``digests``).
        self.digest = P1Digest(self._send_digest, store=digests or DigestStore(clock=clock), clock=clock,
                               period=digest_period)
        # Fields a transition's log line adds to its details (a quota alert's remaining share and reset).
        self._transition_details = transition_details
        self.daily_summary = daily_summary
        # What the ``websocket`` channels publish to and ``/api/v1/alerts/ws`` serves.
        self.websocket_hub = websocket_hub or WebSocketHub()
        self.evaluator = _RecordingEvaluator(rules, sources, clock, self.on_transition, jaeger_base=jaeger_base,
                                             trace_lookup=trace_lookup, after_pass=self.record_pass)
        self._clock = clock
        self._closers = list(closers)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._recorded: dict[str, Alert] = {}  # the active alerts as last written to the store
        self._value_ranges: dict[str, tuple[float, float]] = {}  # lowest and highest value written, per alert
        self._resolved: set[str] = set()  # fingerprints resolved by a notified transition this pass

    @classmethod
    def from_config(cls, config: MonitorConfig, rules: Sequence[Rule], health, quota, *,
                    clock: Callable[[], dt.datetime] = _utcnow,
                    http_client: httpx.AsyncClient | None = None) -> AlertingService:
        """Sources, stores (``alerting.store_url``, else the quota store: outbox, alerts, incidents, P1 digest
        entries), notifiers and heartbeat of the config."""
        alerting = config.alerting
        client = http_client or httpx.AsyncClient()
        streaks = failure_streaks_from_url(config.quota.redis_url)
        sources = {"promql": PrometheusSource(alerting.prometheus_url, http_client=client,
                                              max_concurrent_queries=alerting.max_concurrent_queries),
                   "check": CheckSource(health_service=health, quota_service=quota, streaks=streaks)}
        store_url = alerting.outbox_url(config.quota.store_url)
        outbox = Outbox(store_url, clock=clock)
        websocket_hub = WebSocketHub()
        notifiers = build_notifiers(alerting.delivery, client=client, websocket_hub=websocket_hub)
        dispatcher = Dispatcher.from_config(outbox, alerting.delivery, notifiers, clock=clock)
        heartbeat = (Heartbeat(alerting.heartbeat_url, client=client, method=alerting.heartbeat_method,
                               interval_seconds=alerting.heartbeat_interval_seconds,
                               timeout_seconds=alerting.heartbeat_timeout_seconds)
                     if alerting.heartbeat_url else None)
        summary_config = alerting.daily_summary
        if summary_config.prometheus_url == DailySummaryConfig().prometheus_url:
            summary_config = summary_config.model_copy(update={"prometheus_url": alerting.prometheus_url})
        state = AlertStore(store_url, clock=clock)

        async def episodes(start: dt.datetime, end: dt.datetime):
            return await state.executor.run(state.episodes_between, start, end)

        async def quota_windows(start: dt.datetime, end: dt.datetime):
            return await quota_windows_between(quota, start, end)

        daily_summary = DailySummary(summary_config, quota_windows=quota_windows, episodes=episodes, rules=rules,
                                     client=client, clock=clock)
        return cls(rules, sources, outbox, dispatcher, alerting.delivery, clock=clock,
                   jaeger_base=alerting.jaeger_url, trace_lookup=streak_trace_lookup(streaks),
                   state=state, incidents=IncidentStore(store_url, clock=clock),
                   environment=config.environment, heartbeat=heartbeat, daily_summary=daily_summary,
                   digests=DigestStore(store_url, clock=clock), digest_period=alerting.digest_period,
                   transition_details=quota_details(quota.latest),
                   closers=[] if http_client is not None else [client.aclose], websocket_hub=websocket_hub)

    # -- reading --------------------------------------------------------------------------------------------------
    def alerts(self) -> list[Alert]:
        """The pending and firing alerts now."""
        return self.evaluator.alerts()

    async def history(self, *, priority: Priority | None = None, service: str | None = None,
                      state: AlertState | None = None, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Alert]:
        """Active and recently resolved alerts from the store."""
        return await self.state.executor.run(self.state.history, priority=priority, service=service, state=state,
                                             limit=limit)

    async def incidents(self, *, status: IncidentStatus | None = None,
                        limit: int = DEFAULT_HISTORY_LIMIT) -> list[Incident]:
        return await self.incident_store.executor.run(self.incident_store.incidents, status=status, limit=limit)

    # -- transitions ----------------------------------------------------------------------------------------------
    async def on_transition(self, alert: Alert, transition: Transition) -> None:
        """Queues the notification, then keeps the alert and its incident; a failing step does not skip the next."""
        for step in (self.enqueue, self._keep, self._track_incident):
            try:
                await step(alert, transition)
            except Exception as exc:
                _log.error("Alert transition step failed", rule=alert.rule, transition=transition,
                           step=step.__name__, error=repr(exc))

    async def enqueue(self, alert: Alert, transition: Transition) -> None:
        """P0 and P2: queued at once for the channels their priority is routed to, and the Dispatcher woken. P1: held
        for the period's digest. Every P1 and P2 transition, firing and resolved, is also logged at WARNING as it
        happens (the spec's "P1 Alert: ..." line), whatever the routing: their channel delivery is a digest or may be
        a daily email."""
        notification = Notification.of(alert, transition)
        if alert.priority is not Priority.P0:
            self._log_transition(notification)
        if alert.priority is Priority.P1:
            await self.digest.add(alert, transition)  # a store that is down leaves it held in memory, not lost
            return
        channels = self.delivery.channels_for(alert.priority)
        if not channels:
            if alert.priority is Priority.P0 or alert.priority not in self.delivery.routing:  # `serve` refuses these
                _log.error("Alert transition routed to no channel", rule=alert.rule, transition=transition,
                           alert_priority=alert.priority.value, error_code=alert.error_code)
            return  # routed to none on purpose (`P2: []`): the WARNING line above is its record
        await self.outbox.executor.run(self.outbox.enqueue, alert, transition, channels)
        self.dispatcher.wake()

    def _log_transition(self, notification: Notification) -> None:
        details: Mapping[str, object] = {}
        if self._transition_details is not None:
            try:
                details = self._transition_details(notification.alert)
            except Exception as exc:  # noqa: BLE001 - the line goes out without the extra fields
                _log.warning("Alert details lookup failed", rule=notification.alert.rule, error=repr(exc))
        log_notification(_alert_log, notification, level=logging.WARNING, details=details)

    async def _send_digest(self, notification) -> None:
        await self._send_notification(notification, Priority.P1)

    async def _send_summary(self, notification) -> None:
        await self._send_notification(notification, Priority.P2)

    async def _send_notification(self, notification, priority: Priority) -> None:
        channels = self.delivery.channels_for(priority)
        if channels:
            await self.outbox.executor.run(self.outbox.enqueue_notification, notification, channels)
            self.dispatcher.wake()

    def _widens_range(self, alert: Alert) -> bool:
        """Notes the alert's value; True when it is outside the range written so far."""
        if alert.value is None:
            return False
        low, high = self._value_ranges.get(alert.fingerprint, (alert.value, alert.value))
        widened = alert.fingerprint not in self._value_ranges or not low <= alert.value <= high
        self._value_ranges[alert.fingerprint] = (min(low, alert.value), max(high, alert.value))
        return widened

    async def _keep(self, alert: Alert, transition: Transition) -> None:
        self._widens_range(alert)
        await self.state.executor.run(self.state.upsert, alert)
        if transition == RESOLVED:
            self._recorded.pop(alert.fingerprint, None)
            self._value_ranges.pop(alert.fingerprint, None)
            self._resolved.add(alert.fingerprint)
        else:
            self._recorded[alert.fingerprint] = alert

    async def _track_incident(self, alert: Alert, transition: Transition) -> None:
        if transition == FIRING and opens_incident(self.environment, alert):
            opened = await self.incident_store.executor.run(self.incident_store.open, alert)
            if opened is not None:
                _log.warning("Incident opened", incident_id=opened.id, rule=alert.rule, error_code=alert.error_code)
        elif transition == RESOLVED:
            await self._close_incident(alert)

    async def _close_incident(self, alert: Alert) -> None:
        closed = await self.incident_store.executor.run(self.incident_store.close_for, alert)
        if closed is not None:
            _log.info("Incident closed", incident_id=closed.id, rule=alert.rule, error_code=alert.error_code)

    async def record_pass(self) -> None:
        """Brings the store up to date with the evaluator after a pass; errors are logged, the next pass retries."""
        try:
            current = {alert.fingerprint: alert for alert in self.evaluator.alerts()}
            for fingerprint, alert in current.items():
                kept = self._recorded.get(fingerprint)
                widens = self._widens_range(alert)  # a new worst value is kept for the daily summary
                if kept is None or _recorded_key(kept) != _recorded_key(alert) or widens:
                    await self.state.executor.run(self.state.upsert, alert)
                    self._recorded[fingerprint] = alert
            for fingerprint in [fp for fp in self._recorded if fp not in current]:
                gone = self._recorded.pop(fingerprint)
                self._value_ranges.pop(fingerprint, None)
                if fingerprint in self._resolved:
                    continue
                if gone.state is AlertState.PENDING:
                    await self.state.executor.run(self.state.discard, gone)
                else:  # resolved without a notification (it was held back by inhibition)
                    ended = gone.with_state(AlertState.RESOLVED, ends_at=gone.ends_at or self._clock())
                    await self.state.executor.run(self.state.upsert, ended)
                    await self._close_incident(ended)
            self._resolved.clear()
        except Exception as exc:
            _log.error("Keeping alert state failed", error=repr(exc))

    # -- running --------------------------------------------------------------------------------------------------
    async def restore(self) -> None:
        """Gives the evaluator back the pending and firing alerts of the store (firing ones count as announced)."""
        try:
            active = await self.state.executor.run(self.state.load_active)
        except Exception as exc:  # an unreadable store must not keep alerting down; alerts may be announced again
            _log.error("Restoring alerts failed; starting with none", error=repr(exc))
            active = []
        self.evaluator.restore(active)
        self._recorded = {alert.fingerprint: alert for alert in self.evaluator.alerts()}
        if active:
            _log.info("Alerts restored", count=len(self._recorded))

    async def start(self) -> None:
        """Restores the evaluator from the store, then runs the evaluator, Dispatcher and heartbeat as tasks."""
        if self._tasks:
            return
        await self.restore()
        self._stop.clear()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.evaluator.run(), name="otel-monitor-alert-evaluation"),
                       loop.create_task(self.dispatcher.run(self._stop), name="otel-monitor-alert-delivery")]
        if self.heartbeat is not None:
            self._tasks.append(loop.create_task(self.heartbeat.run(self._stop), name="otel-monitor-heartbeat"))
        self._tasks.append(loop.create_task(self.digest.run(), name="otel-monitor-p1-digest"))
        refresher = AlertmanagerRefresher.from_config(self.delivery, self.alerts, clock=self._clock)
        self._tasks.append(loop.create_task(refresher.run(self._stop), name="otel-monitor-alertmanager-refresh"))
        if self.daily_summary is not None:
            self._tasks.append(loop.create_task(self.daily_summary.run(self._send_summary),
                                                name="otel-monitor-daily-summary"))

    async def stop(self) -> None:
        """Stops the loops, then closes the HTTP client and the stores' database connections."""
        self.evaluator.stop()
        self._stop.set()
        for task in self._tasks:
            if task.get_name() in ("otel-monitor-p1-digest", "otel-monitor-daily-summary"):
                task.cancel()  # they sleep until the hour or the send time
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        self._tasks = []
        for close in self._closers:
            with contextlib.suppress(Exception):
                await close()
        for store in (self.outbox, self.state, self.incident_store, self.digest.store):
            try:  # close waits for the store's lock: behind a call hanging on the database, only a few seconds
                await store.executor.shutdown_after(store.close)
            except TimeoutError:
                _log.warning("Alerting store still busy with its database; left behind", store=store.executor.name)
            except Exception:  # noqa: BLE001 - a store that fails to close is gone with the service anyway
                pass

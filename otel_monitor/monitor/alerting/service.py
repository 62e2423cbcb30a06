"""The alerting of the monitor, wired from its config and run as tasks of the app: the evaluation loop (each pass's
changes through the pipeline), the Dispatcher, repeat and escalation, the P1 digest, the daily summary, the
Alertmanager refresh and the heartbeat; and what operators do: acknowledge an alert, add a note to an incident."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import httpx

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.costs import CompletedProject, ProjectCosts
from otel_monitor.instrument.failure_streaks import failure_streaks_from_url
from otel_monitor.instrument.redis_client import telemetry_redis
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.acknowledgement import Acknowledgement, AcknowledgementStore
from otel_monitor.monitor.alerting.delivery.alertmanager_refresh import AlertmanagerRefresher
from otel_monitor.monitor.alerting.delivery.daily_summary import DailySummary
from otel_monitor.monitor.alerting.delivery.digest import DEFAULT_DIGEST_PERIOD, DigestStore
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.escalation import (
    ESCALATION_CHECK_SECONDS,
    EscalationPolicy,
    EscalationStore,
    Escalator,
)
from otel_monitor.monitor.alerting.evaluate.changes import Change
from otel_monitor.monitor.alerting.evaluate.evaluator import Evaluator
from otel_monitor.monitor.alerting.evaluate.sources import CheckSource, PrometheusSource, Source, streak_trace_lookup
from otel_monitor.monitor.alerting.heartbeat import Heartbeat
from otel_monitor.monitor.alerting.incidents import (
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    IncidentStore,
)
from otel_monitor.monitor.alerting.metrics import AlertingMetrics, OutboxDepth, OutboxDepthReader
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority, Rule
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers import WebSocketHub, build_notifiers
from otel_monitor.monitor.alerting.pipeline import AlertPipeline
from otel_monitor.monitor.alerting.quota_details import quota_details
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.silences.gate import SilenceGate
from otel_monitor.monitor.alerting.silences.store import SilenceStore
from otel_monitor.monitor.alerting.silences.windows import MaintenanceWindow
from otel_monitor.monitor.alerting.state import DEFAULT_HISTORY_LIMIT, AlertEpisode, AlertStore
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.leadership import AdvisoryLockLeadership, AlwaysLeader, Leadership
from otel_monitor.monitor.quota.day_windows import WindowPeak, quota_windows_between

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from otel_monitor.monitor.health.service import HealthService
    from otel_monitor.monitor.quota.service import QuotaService

__all__ = ["AlertingService", "LeadershipLost", "NotFiring"]

_log = StructuredLogger("otel_monitor.alerting.service")
# The evaluation loop's lines keep the logger name they had when the loop was the evaluator's.
_evaluation_log = StructuredLogger("otel_monitor.alerting.evaluation")


def _fired_at_of(rules: Sequence[Rule]) -> Callable[[Alert], dt.datetime]:
    """When an alert fired: its start plus its rule's ``for_seconds`` (the pending time)."""
    pending = {rule.name: dt.timedelta(seconds=rule.for_seconds) for rule in rules}

    def fired_at(alert: Alert) -> dt.datetime:
        assert alert.starts_at is not None  # the escalator looks at started alerts only
        return alert.starts_at + pending.get(alert.rule, dt.timedelta())

    return fired_at


class NotFiring(LookupError):
    """No firing alert has this fingerprint (nothing to acknowledge)."""


class LeadershipLost(RuntimeError):
    """This replica no longer leads: what only the leader sends is not sent."""


# How often a replica that does not lead reads the active alerts from the store (what its API and status page show).
FOLLOWER_ALERTS_REFRESH_SECONDS = 1.0
# Loops cancelled rather than awaited on stop: they sleep until the hour or the send time.
_CANCELLED_ON_STOP = ("otel-monitor-p1-digest", "otel-monitor-daily-summary")


class AlertingService:
    """The Evaluator, the pipeline, the Dispatcher and the heartbeat, wired, and run as tasks of the app.

    Each evaluation pass reads ``changes = await evaluator.evaluate_once()``, then ``await pipeline.run(changes)``
    (``AlertPipeline`` names the stages: log, digest, outbox, store, incidents). On start the evaluator is restored
    from the store, so an alert firing across a restart is not announced again, and resolves once.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        sources: Mapping[str, Source],
        outbox: Outbox,
        dispatcher: Dispatcher,
        delivery: DeliveryConfig,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        jaeger_base: str | None = None,
        logs_base: str | None = None,
        trace_lookup: Callable[[str], str | None] | None = None,
        state: AlertStore | None = None,
        incidents: IncidentStore | None = None,
        environment: str = "development",
        heartbeat: Heartbeat | None = None,
        daily_summary: DailySummary | None = None,
        digests: DigestStore | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        websocket_hub: WebSocketHub | None = None,
        digest_period: dt.timedelta = DEFAULT_DIGEST_PERIOD,
        transition_details: Callable[[Alert], Mapping[str, object]] | None = None,
        metrics: AlertingMetrics | None = None,
        silences: SilenceStore | None = None,
        maintenance_windows: Sequence[MaintenanceWindow] = (),
        acknowledgements: AcknowledgementStore | None = None,
        escalations: EscalationStore | None = None,
        escalation: Mapping[Priority, EscalationPolicy] | None = None,
        public_url: str | None = None,
        escalation_check_seconds: float = ESCALATION_CHECK_SECONDS,
        leadership: Leadership | None = None,
    ) -> None:
        # Which replica leads: only the leader evaluates, escalates, beats and sends digests and summaries.
        self.leadership: Leadership = leadership or AlwaysLeader()
        self.outbox = outbox
        self.dispatcher = dispatcher
        self.delivery = delivery
        self.state = state or AlertStore(clock=clock)
        self.incident_store = incidents or IncidentStore(clock=clock)
        self.heartbeat = heartbeat
        self.daily_summary = daily_summary
        # What the ``websocket`` channels publish to and ``/api/v1/alerts/ws`` serves.
        self.websocket_hub = websocket_hub or WebSocketHub()
        # The alerting's own metrics (None: not exported): the evaluator's and Dispatcher's, the active alerts and
        # the outbox's depth.
        self.metrics = metrics
        self.evaluator = Evaluator(
            rules,
            sources,
            clock,
            jaeger_base=jaeger_base,
            logs_base=logs_base,
            trace_lookup=trace_lookup,
            metrics=metrics,
        )
        # What holds alerts' notifications: the silences of the API and the config's maintenance windows.
        self.silences = SilenceGate(
            silences or SilenceStore(clock=clock),
            self.state,
            current_alerts=self.evaluator.alerts,
            windows=maintenance_windows,
            clock=clock,
        )
        self.pipeline = AlertPipeline(
            outbox,
            dispatcher,
            delivery,
            store=self.state,
            incidents=self.incident_store,
            digests=digests or DigestStore(clock=clock),
            digest_period=digest_period,
            environment=environment,
            transition_details=transition_details,
            clock=clock,
            silences=self.silences,
            public_url=public_url,
            escalated_channels=self._escalated_channels,
            metrics=metrics,
        )
        self.acknowledgements = acknowledgements or AcknowledgementStore(clock=clock)
        # The standing acknowledgements of the alerts now, by fingerprint (the alerts gauge's ``acknowledged``).
        self._acknowledged: dict[str, Acknowledgement] = {}
        self.escalator = Escalator(
            escalation or {},
            delivery.channels_for,
            store=escalations or EscalationStore(clock=clock),
            alerts=self.alerts,
            standing_acks=self.standing_acks,
            end_ack=self._end_stale_ack,
            enqueue=self._enqueue_now,
            notification=lambda alert, repeat: self.pipeline.notification(alert, "firing", repeat),
            record=self._record_on_incident,
            is_held=lambda alert: bool(self.silences.holding(alert)),  # a silenced alert neither repeats nor escalates
            fired_at=_fired_at_of(rules),
            check_seconds=escalation_check_seconds,
        )
        # P1 transitions wait here for their period's digest (kept in ``digests``).
        self.digest = self.pipeline.digest
        self._clock = clock
        self._closers = list(closers)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        # The leader's loops, stopped by their own event when the leadership ends.
        self._leading_stop = asyncio.Event()
        self._leading_tasks: list[asyncio.Task] = []
        # A replica that does not lead: the pending and firing alerts as the leader last stored them.
        self._stored_alerts: list[Alert] = []

    @classmethod
    def from_config(
        cls,
        config: MonitorConfig,
        rules: Sequence[Rule],
        health: HealthService,
        quota: QuotaService,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        http_client: httpx.AsyncClient | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> AlertingService:
        """Sources, stores (``alerting.store_url``, else the quota store: outbox, alerts, incidents, P1 digest
        entries), notifiers and heartbeat of the config; its own metrics on ``meter_provider`` (the global one when
        None)."""
        alerting = config.alerting
        client = http_client or httpx.AsyncClient()
        streaks = failure_streaks_from_url(config.quota.redis_url)
        sources: dict[str, Source] = {
            "promql": PrometheusSource(
                alerting.prometheus_url, http_client=client, max_concurrent_queries=alerting.max_concurrent_queries
            ),
            "check": CheckSource(health_service=health, quota_service=quota, streaks=streaks),
        }
        store_url = alerting.store_url
        assert store_url is not None  # MonitorConfig fills it in: the quota store's database unless one is named
        ha = config.ha
        leadership: Leadership = (
            AdvisoryLockLeadership(
                store_url, replica_id=ha.replica_id, check_interval_seconds=ha.check_interval_seconds
            )
            if ha.enabled
            else AlwaysLeader(ha.replica_id)
        )
        outbox = Outbox(store_url, clock=clock)
        websocket_hub = WebSocketHub()
        notifiers = build_notifiers(alerting.delivery, client=client, websocket_hub=websocket_hub)
        metrics = AlertingMetrics(meter_provider, clock=clock)
        dispatcher = Dispatcher.from_config(outbox, alerting.delivery, notifiers, clock=clock, metrics=metrics)
        heartbeat = (
            Heartbeat(
                alerting.heartbeat_url,
                client=client,
                method=alerting.heartbeat_method,
                interval_seconds=alerting.heartbeat_interval_seconds,
                timeout_seconds=alerting.heartbeat_timeout_seconds,
            )
            if alerting.heartbeat_url
            else None
        )
        state = AlertStore(store_url, clock=clock)

        async def episodes(start: dt.datetime, end: dt.datetime) -> list[AlertEpisode]:
            return await state.executor.run(state.episodes_between, start, end)

        async def quota_windows(start: dt.datetime, end: dt.datetime) -> dict[str, list[WindowPeak]]:
            return await quota_windows_between(quota, start, end)

        redis_url = config.quota.redis_url

        async def completed_projects(start: dt.datetime, end: dt.datetime) -> list[CompletedProject]:
            def read() -> list[CompletedProject]:  # the backend's Redis, where its processes keep them
                assert redis_url is not None
                redis_client = telemetry_redis(redis_url, timeout=2.0)
                try:
                    return ProjectCosts(redis_client).completed_between(start, end)
                finally:
                    redis_client.close()

            return await asyncio.to_thread(read)

        daily_summary = DailySummary(
            alerting.daily_summary,
            quota_windows=quota_windows,
            episodes=episodes,
            completed_projects=completed_projects if redis_url else None,
            jaeger_url=alerting.jaeger_url,
            rules=rules,
            client=client,
            clock=clock,
        )
        return cls(
            rules,
            sources,
            outbox,
            dispatcher,
            alerting.delivery,
            clock=clock,
            jaeger_base=alerting.jaeger_url,
            logs_base=alerting.logs_url,
            trace_lookup=streak_trace_lookup(streaks),
            state=state,
            incidents=IncidentStore(store_url, clock=clock),
            environment=config.environment,
            heartbeat=heartbeat,
            daily_summary=daily_summary,
            digests=DigestStore(store_url, clock=clock),
            digest_period=alerting.digest_period,
            transition_details=quota_details(quota.latest),
            closers=[] if http_client is not None else [client.aclose],
            websocket_hub=websocket_hub,
            metrics=metrics,
            silences=SilenceStore(store_url, clock=clock),
            maintenance_windows=alerting.maintenance_windows,
            acknowledgements=AcknowledgementStore(store_url, clock=clock),
            escalations=EscalationStore(store_url, clock=clock),
            escalation=alerting.escalation,
            public_url=config.server.public_base_url,
            leadership=leadership,
        )

    # -- reading --------------------------------------------------------------------------------------------------
    def alerts(self) -> list[Alert]:
        """The pending and firing alerts now: the evaluator's on the leader, the store's on another replica."""
        return self.evaluator.alerts() if self.leadership.is_leader else list(self._stored_alerts)

    async def alert(self, fingerprint: str) -> Alert | None:
        """The alert as it is now if pending or firing, else its latest episode as kept; None if never seen."""
        for alert in self.alerts():
            if alert.fingerprint == fingerprint:
                return alert
        return await self.state.executor.run(self.state.latest, fingerprint)

    async def history(
        self,
        *,
        priority: Priority | None = None,
        service: str | None = None,
        state: AlertState | None = None,
        limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> list[Alert]:
        """Active and recently resolved alerts from the store."""
        return await self.state.executor.run(
            self.state.history, priority=priority, service=service, state=state, limit=limit
        )

    async def incidents(
        self, *, status: IncidentStatus | None = None, limit: int = DEFAULT_HISTORY_LIMIT
    ) -> list[Incident]:
        return await self.incident_store.executor.run(self.incident_store.incidents, status=status, limit=limit)

    async def unresolved_incidents(self, *, limit: int = DEFAULT_HISTORY_LIMIT) -> list[Incident]:
        """The open and acknowledged incidents, newest first, with their timelines."""
        return await self.incident_store.executor.run(self.incident_store.unresolved_with_timelines, limit=limit)

    async def incident(self, incident_id: int) -> Incident:
        """One incident with its timeline; raises UnknownIncident."""
        return await self.incident_store.executor.run(self.incident_store.get, incident_id)

    async def standing_acks(self, alerts: Sequence[Alert]) -> dict[str, Acknowledgement]:
        """The standing acknowledgement of each given alert's episode that has one, by fingerprint."""
        return await self.acknowledgements.executor.run(self.acknowledgements.standing, alerts)

    # -- what operators do ----------------------------------------------------------------------------------------
    async def acknowledge(
        self, fingerprint: str, *, by: str, comment: str | None = None, until: dt.datetime | None = None
    ) -> Acknowledgement:
        """Acknowledges the firing alert ``fingerprint`` (its repeats and escalation stop; its incident, if any, is
        acknowledged); raises NotFiring, or ValueError for an ``until`` already past."""
        firing = [a for a in self.alerts() if a.fingerprint == fingerprint and a.state is AlertState.FIRING]
        if not firing:
            raise NotFiring(fingerprint)
        alert = firing[0]
        if until is not None and until <= self._clock():
            raise ValueError("until must be in the future")
        ack = await self.acknowledgements.executor.run(
            self.acknowledgements.acknowledge, alert, by=by, comment=comment, until=until
        )
        self._acknowledged[fingerprint] = ack
        self._keep_alerts()
        _log.info("Alert acknowledged", rule=alert.rule, fingerprint=fingerprint, by=by)
        text = comment or "acknowledged"
        if until is not None:
            text = f"{text} (until {ack.to_json()['until']})"
        incident = await self.incident_store.executor.run(self.incident_store.acknowledge_for, alert, by=by, text=text)
        if (
            incident is not None
            and incident.acknowledged_at == ack.at
            and self.metrics is not None
            and incident.time_to_acknowledge is not None
        ):
            self.metrics.incident_acknowledged(alert.rule, alert.priority, incident.time_to_acknowledge)
        return ack

    async def note(self, incident_id: int, *, author: str, text: str) -> IncidentEvent:
        """Adds a note to an incident's timeline; raises UnknownIncident."""
        return await self.incident_store.executor.run(self.incident_store.note, incident_id, author=author, text=text)

    # -- repeat and escalation ------------------------------------------------------------------------------------
    async def _end_stale_ack(self, alert: Alert, ack: Acknowledgement, now: dt.datetime) -> None:
        await self.acknowledgements.executor.run(self.acknowledgements.end, ack, now)
        self._acknowledged.pop(alert.fingerprint, None)
        self._keep_alerts()
        _log.warning("Alert acknowledgement expired", rule=alert.rule, fingerprint=alert.fingerprint, by=ack.by)
        await self.incident_store.executor.run(
            self.incident_store.reopen_for, alert, text=f"acknowledgement by {ack.by} expired; the alert still fires"
        )

    async def _enqueue_now(self, notification: Notification, channels: Sequence[str]) -> None:
        if not await self.leadership.still_leading():  # the fence: a replica that lost the lock sends nothing
            raise LeadershipLost(self.leadership.replica_id)
        await self.outbox.executor.run(self.outbox.enqueue_notification, notification, channels)
        self.dispatcher.wake()

    async def _record_on_incident(self, alert: Alert, kind: IncidentEventKind, text: str) -> None:
        await self.incident_store.executor.run(self.incident_store.record_for, alert, kind, text)

    async def _escalated_channels(self, alert: Alert) -> tuple[str, ...]:
        store = self.escalator.store
        return await store.executor.run(store.channels_reached, alert)

    # -- running --------------------------------------------------------------------------------------------------
    async def evaluate_once(self, now: dt.datetime | None = None) -> list[Change]:
        """One pass of the evaluation loop at ``now`` (default: the clock); returns its changes."""
        changes = await self.evaluator.evaluate_once(now)
        await self.pipeline.run(changes)
        self._keep_alerts()
        return changes

    def _keep_alerts(self) -> None:
        alerts = self.evaluator.alerts()
        episodes = {(alert.fingerprint, alert.starts_at) for alert in alerts if alert.state is AlertState.FIRING}
        self._acknowledged = {  # an acknowledgement ends with its episode
            fingerprint: ack
            for fingerprint, ack in self._acknowledged.items()
            if (fingerprint, ack.starts_at) in episodes
        }
        if self.metrics is not None:
            alerts = self.evaluator.alerts()
            self.metrics.keep_alerts(
                alerts,
                silenced={a.fingerprint for a in alerts if self.silences.holding(a)},
                acknowledged=self._acknowledged.keys(),
            )

    async def outbox_depth(self) -> OutboxDepth:
        """The outbox's pending deliveries, read from the store on its own threads."""
        pending, oldest = await self.outbox.executor.run(self.outbox.pending_depth)
        return OutboxDepth(pending, oldest)

    async def _evaluate(self, stop: asyncio.Event) -> None:
        """Evaluation passes, each when the next rule is due, until ``stop``; a failing pass is logged and the loop
        goes on. Each pass first checks that this replica still leads (the fence), and ends the loop if not."""
        while not stop.is_set():
            if not await self.leadership.still_leading():
                _evaluation_log.error("Alert evaluation stopped: this replica no longer leads")
                return
            try:
                await self.evaluate_once()
            except Exception:
                _evaluation_log.exception("Alert evaluation pass failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.evaluator.seconds_to_next_pass())

    async def restore(self) -> None:
        """Gives the evaluator back the pending and firing alerts of the store (firing ones count as announced)."""
        try:
            active = await self.state.executor.run(self.state.load_active)
        except Exception as exc:  # an unreadable store must not keep alerting down; alerts may be announced again
            _log.error("Restoring alerts failed; starting with none", error=repr(exc))
            active = []
        self.evaluator.restore(active)
        await self.silences.restore()
        try:
            self._acknowledged = await self.standing_acks(self.evaluator.alerts())
        except Exception as exc:
            _log.error("Restoring acknowledgements failed", error=repr(exc))
        self._keep_alerts()
        if active:
            _log.info("Alerts restored", count=len(self.evaluator.alerts()))

    async def start(self) -> None:
        """Runs the Dispatcher and the outbox depth (every replica) and, while this replica leads, the leader's loops
        (``_lead``): a single monitor leads at once, a replica of several once it takes the lock."""
        if self._tasks:
            return
        self._stop.clear()
        loop = asyncio.get_running_loop()
        if not self.leadership.enabled:
            await self._lead()
        self._tasks = [loop.create_task(self.dispatcher.run(self._stop), name="otel-monitor-alert-delivery")]
        if self.metrics is not None:
            depth = OutboxDepthReader(self.outbox_depth, self.metrics)
            self._tasks.append(loop.create_task(depth.run(self._stop), name="otel-monitor-outbox-depth"))
        if self.leadership.enabled:
            self._tasks.append(
                loop.create_task(
                    self.leadership.run(self._lead, self._follow, self._stop), name="otel-monitor-leader-election"
                )
            )
            self._tasks.append(loop.create_task(self._read_stored_alerts(), name="otel-monitor-stored-alerts"))

    async def _read_stored_alerts(self) -> None:
        """While this replica does not lead, keeps the store's active alerts for its API and status page."""
        while not self._stop.is_set():
            if not self.leadership.is_leader:
                try:
                    self._stored_alerts = await self.state.executor.run(self.state.load_active)
                except Exception as exc:  # the store is down: the last alerts read stay shown
                    _log.warning("Reading the leader's alerts failed", error=repr(exc))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), FOLLOWER_ALERTS_REFRESH_SECONDS)

    async def _lead(self) -> None:
        """Restores the evaluator from the store (firing alerts, silences, acknowledgements; the digest and
        escalation read theirs from the store), then runs the evaluation loop, repeat and escalation, the heartbeat,
        the digest, the Alertmanager refresh and the daily summary as tasks."""
        if self._leading_tasks:
            return
        await self.restore()
        stop = self._leading_stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._evaluate(stop), name="otel-monitor-alert-evaluation")]
        if self.escalator.policies:
            tasks.append(loop.create_task(self.escalator.run(stop), name="otel-monitor-alert-escalation"))
        if self.heartbeat is not None:
            tasks.append(loop.create_task(self.heartbeat.run(stop), name="otel-monitor-heartbeat"))
        tasks.append(loop.create_task(self.digest.run(), name="otel-monitor-p1-digest"))
        refresher = AlertmanagerRefresher.from_config(self.delivery, self.alerts, clock=self._clock)
        tasks.append(loop.create_task(refresher.run(stop), name="otel-monitor-alertmanager-refresh"))
        if self.daily_summary is not None:
            tasks.append(
                loop.create_task(self.daily_summary.run(self.pipeline.send_summary), name="otel-monitor-daily-summary")
            )
        self._leading_tasks = tasks

    async def _follow(self) -> None:
        """The leadership is lost: the leader's loops are cancelled at once (a new leader may already run them), and
        the alerts held in memory are forgotten (the next leadership restores them from the store)."""
        self._leading_stop.set()
        tasks, self._leading_tasks = self._leading_tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        self.evaluator.restore([])
        self._acknowledged = {}
        self._keep_alerts()

    async def stop(self) -> None:
        """Stops the loops, then closes the HTTP client and the stores' database connections."""
        self._stop.set()
        self._leading_stop.set()
        tasks = [*self._leading_tasks, *self._tasks]
        for task in tasks:
            if task.get_name() in _CANCELLED_ON_STOP:
                task.cancel()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        self._tasks, self._leading_tasks = [], []
        await self.leadership.close()  # frees the lock at once: another replica need not wait for a check
        for close in self._closers:
            with contextlib.suppress(Exception):
                await close()
        stores = (self.outbox, self.state, self.incident_store, self.digest.store, self.acknowledgements)
        for store in (*stores, self.escalator.store, self.silences.store):
            try:  # close waits for the store's lock: behind a call hanging on the database, only a few seconds
                await store.executor.shutdown_after(store.close)
            except TimeoutError:
                _log.warning("Alerting store still busy with its database; left behind", store=store.executor.name)
            except Exception:
                pass

"""The path from an evaluation pass's changes to their deliveries and records, written top-down as one list of stages.

Every stage has one signature: it takes the pass's changes and returns the ones that go on to the next stage. Here
each stage passes them all on, since the store keeps every change whatever its route; a stage acts on the changes it
concerns (the delivery stages on the announced transitions, by priority). A stage handles each change alone: one
failing on a change is logged, and that change goes on to the next stages and the other changes through this one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from otel_monitor._utc_time import utc_now
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.acknowledgement import paging_notification
from otel_monitor.monitor.alerting.delivery.digest import DEFAULT_DIGEST_PERIOD, DigestStore, P1Digest
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.evaluate.changes import Change, ChangeKind
from otel_monitor.monitor.alerting.incidents import IncidentStore, opens_incident
from otel_monitor.monitor.alerting.metrics import AlertingMetrics
from otel_monitor.monitor.alerting.model import RESOLVED, Alert, Priority, Transition
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers.log_file import ALERT_LOGGER, log_notification
from otel_monitor.monitor.alerting.routing import AT_ONCE, DIGESTED, LOGGED_AS_THEY_HAPPEN, DeliveryConfig
from otel_monitor.monitor.alerting.silences.gate import SilenceGate
from otel_monitor.monitor.alerting.state import AlertStore

__all__ = ["AlertPipeline", "Stage"]

# The pipeline's lines keep the logger name they had when the service ran these steps (operators filter on it).
_log = StructuredLogger("otel_monitor.alerting.service")
_alert_log = StructuredLogger(ALERT_LOGGER)

Stage = Callable[[list[Change]], Awaitable[list[Change]]]
Step = Callable[[Change], Awaitable[None]]


class AlertPipeline:
    """Announces, delivers and keeps the changes of each evaluation pass:

    0. ``hold_silenced``: the firing transitions of alerts a silence or maintenance window holds are only kept
       (``silences``, a ``SilenceGate``), and the held ones nothing holds any more are announced.
    1. ``log_transitions``: P1 and P2 transitions logged at WARNING as they happen (their channels may hear of them
       only in a digest or the daily summary).
    2. ``hold_for_digest``: P1 transitions kept for their period's digest (``digest``), sent at the period's close.
    3. ``queue``: P0 and P2 transitions queued in the outbox for their priority's channels (a resolution also for
       the channels escalation reached), the Dispatcher woken; before the store write, so a crash right after never
       loses a notification. With ``public_url``, a firing P0 links to its acknowledgement.
    4. ``record``: every change written to the alert store (a write that fails is tried again with the next run).
    5. ``track_incidents``: in production a P0 that fires opens an incident; its resolution resolves it (time to
       resolve on ``metrics``).

    The P1 digest and the P2 daily summary are queued for their priority's channels by ``send_digest`` and
    ``send_summary``.
    """

    def __init__(
        self,
        outbox: Outbox,
        dispatcher: Dispatcher,
        delivery: DeliveryConfig,
        *,
        store: AlertStore,
        incidents: IncidentStore,
        digests: DigestStore,
        digest_period: dt.timedelta = DEFAULT_DIGEST_PERIOD,
        environment: str = "development",
        transition_details: Callable[[Alert], Mapping[str, object]] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        silences: SilenceGate | None = None,
        public_url: str | None = None,
        escalated_channels: Callable[[Alert], Awaitable[Sequence[str]]] | None = None,
        metrics: AlertingMetrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.silences = silences
        self.dispatcher = dispatcher
        self.delivery = delivery
        self.store = store
        self.incidents = incidents
        self.environment = environment
        self.digest = P1Digest(self.send_digest, store=digests, clock=clock, period=digest_period)
        # Fields a transition's log line adds to its details (a quota alert's remaining share and reset).
        self._transition_details = transition_details
        self._unwritten: dict[str, Change] = {}  # changes the store refused, by fingerprint, for the next run
        self.public_url = public_url
        self._escalated_channels = escalated_channels
        self._metrics = metrics
        self.stages: tuple[Stage, ...] = (
            self.hold_silenced,
            self.log_transitions,
            self.hold_for_digest,
            self.queue,
            self.record,
            self.track_incidents,
        )

    async def run(self, changes: Sequence[Change]) -> None:
        """Runs the changes through every stage, in order."""
        passing = list(changes)
        for stage in self.stages:
            passing = await stage(passing)

    # -- the stages -----------------------------------------------------------------------------------------------
    async def hold_silenced(self, changes: list[Change]) -> list[Change]:
        return changes if self.silences is None else await self.silences.run(changes)

    async def log_transitions(self, changes: list[Change]) -> list[Change]:
        await self._each("log_transitions", _transitions(changes, LOGGED_AS_THEY_HAPPEN), self._log_transition)
        return changes

    async def hold_for_digest(self, changes: list[Change]) -> list[Change]:
        async def hold(change: Change) -> None:
            await self.digest.add(change.alert, change.transition)  # a store that is down leaves it held in memory

        await self._each("hold_for_digest", _transitions(changes, DIGESTED), hold)
        return changes

    async def queue(self, changes: list[Change]) -> list[Change]:
        queued = False

        async def enqueue(change: Change) -> None:
            nonlocal queued
            alert, transition = change.alert, change.transition
            if transition is None:  # announced changes all have one
                return
            channels = self.delivery.channels_for(alert.priority)
            if not channels:
                if alert.priority is Priority.P0 or alert.priority not in self.delivery.routing:  # `serve` refuses
                    _log.error(
                        "Alert transition routed to no channel",
                        rule=alert.rule,
                        transition=change.transition,
                        alert_priority=alert.priority.value,
                        error_code=alert.error_code,
                    )
                return  # routed to none on purpose (`P2: []`): the WARNING line of log_transitions is its record
            if transition == RESOLVED and self._escalated_channels is not None:
                channels = tuple(dict.fromkeys((*channels, *await self._escalated_channels(alert))))
            notification = self.notification(alert, transition)
            await self.outbox.executor.run(self.outbox.enqueue_notification, notification, channels)
            queued = True

        await self._each("queue", _transitions(changes, AT_ONCE), enqueue)
        if queued:
            self.dispatcher.wake()
        return changes

    async def record(self, changes: list[Change]) -> list[Change]:
        fresh = {change.alert.fingerprint for change in changes}
        retried = [change for fingerprint, change in self._unwritten.items() if fingerprint not in fresh]
        self._unwritten = {}

        async def write(change: Change) -> None:
            try:
                if change.kind is ChangeKind.DROPPED:
                    await self.store.executor.run(self.store.discard, change.alert)
                else:
                    await self.store.executor.run(self.store.upsert, change.alert)
            except Exception:
                self._unwritten[change.alert.fingerprint] = change
                raise

        await self._each("record", [*retried, *changes], write)
        return changes

    async def track_incidents(self, changes: list[Change]) -> list[Change]:
        async def track(change: Change) -> None:
            alert = change.alert
            if change.kind is ChangeKind.FIRED and opens_incident(self.environment, alert):
                opened = await self.incidents.executor.run(self.incidents.open, alert)
                if opened is not None:
                    _log.warning("Incident opened", incident_id=opened.id, rule=alert.rule, error_code=alert.error_code)
            elif change.kind in (ChangeKind.RESOLVED, ChangeKind.ENDED):
                resolved = await self.incidents.executor.run(self.incidents.resolve_for, alert)
                if resolved is not None:
                    _log.info(
                        "Incident resolved", incident_id=resolved.id, rule=alert.rule, error_code=alert.error_code
                    )
                    if self._metrics is not None and resolved.time_to_resolve is not None:
                        self._metrics.incident_resolved(alert.rule, alert.priority, resolved.time_to_resolve)

        await self._each("track_incidents", changes, track)
        return changes

    # -- notifications of the pipeline's own making ---------------------------------------------------------------
    def notification(self, alert: Alert, transition: Transition, repeat: int = 0) -> Notification:
        """The alert's transition as its channels get it (with ``public_url``, a firing P0 links to its ack)."""
        return paging_notification(alert, transition, public_url=self.public_url, repeat=repeat)

    async def send_digest(self, notification: Notification) -> None:
        """Queues a period's P1 digest for the P1 channels."""
        await self._queue_notification(notification, Priority.P1)

    async def send_summary(self, notification: Notification) -> None:
        """Queues a day's summary for the P2 channels."""
        await self._queue_notification(notification, Priority.P2)

    async def _queue_notification(self, notification: Notification, priority: Priority) -> None:
        channels = self.delivery.channels_for(priority)
        if channels:
            await self.outbox.executor.run(self.outbox.enqueue_notification, notification, channels)
            self.dispatcher.wake()

    # -- one change at a time -------------------------------------------------------------------------------------
    async def _log_transition(self, change: Change) -> None:
        notification = Notification.of(change.alert, change.transition)
        details: Mapping[str, object] = {}
        if self._transition_details is not None:
            try:
                details = self._transition_details(notification.alert)
            except Exception as exc:
                _log.warning("Alert details lookup failed", rule=notification.alert.rule, error=repr(exc))
        log_notification(_alert_log, notification, level=logging.WARNING, details=details)

    @staticmethod
    async def _each(stage: str, changes: Sequence[Change], step: Step) -> None:
        """``step`` on each change; a failure is logged and does not keep the step from the other changes."""
        for change in changes:
            try:
                await step(change)
            except Exception as exc:
                if change.announced:
                    _log.error(
                        "Alert transition step failed",
                        rule=change.alert.rule,
                        transition=change.transition,
                        step=stage,
                        error=repr(exc),
                    )
                else:
                    _log.error("Keeping alert state failed", error=repr(exc))


def _transitions(changes: Sequence[Change], priorities: frozenset[Priority]) -> list[Change]:
    """The announced transitions among ``changes`` of an alert of one of ``priorities``."""
    return [change for change in changes if change.announced and change.alert.priority in priorities]

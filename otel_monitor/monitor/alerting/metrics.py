"""The alerting's own metrics as OpenTelemetry instruments: the one definition site of their names and labels.

Instrument (unit) -> Prometheus series from the collector's exporter:

- ``otel_monitor.alerts`` ({alert}) -> ``otel_monitor_alerts`` {rule, priority, service, state}: the active
  alerts (state ``pending``, ``firing``, ``silenced``: firing while a silence or maintenance window holds it, or
  ``acknowledged``: firing and acknowledged), like Prometheus's ``ALERTS``; ``service`` only on alerts that have one.
  A series whose alerts are gone (resolved, or pending turned firing) reads 0 for ``ENDED_SERIES_SECONDS``, then
  is no longer observed: the collector's exporter keeps a series' last value until it expires, so the 0 is what
  tells dashboards it ended. Current alerts: ``otel_monitor_alerts > 0``.
- ``otel_monitor.notifications`` ({notification}) -> ``otel_monitor_notifications_total`` {channel, result}: each
  delivery attempt's outcome as written to the outbox: ``delivered``, ``retry`` (due again later) or ``failed``
  (refused, or retried until given up).
- ``otel_monitor.outbox.pending`` ({notification}) -> ``otel_monitor_outbox_pending``: deliveries not done yet.
- ``otel_monitor.outbox.oldest_pending`` (s) -> ``otel_monitor_outbox_oldest_pending_seconds``: age of the oldest
  of them (0 when none).
- ``otel_monitor.rule.evaluation.duration`` (s) -> ``otel_monitor_rule_evaluation_duration_seconds`` {rule}.
- ``otel_monitor.incident.time_to_acknowledge`` (s) -> ``otel_monitor_incident_time_to_acknowledge_seconds``
  {rule, priority}: from an incident's opening to its first acknowledgement.
- ``otel_monitor.incident.time_to_resolve`` (s) -> ``otel_monitor_incident_time_to_resolve_seconds``
  {rule, priority}: from an incident's opening to its resolution.
- ``otel_monitor.rule.evaluation.errors`` ({error}) -> ``otel_monitor_rule_evaluation_errors_total`` {rule}: the
  evaluations whose source failed (the rule's alerts keep their state).

The outbox gauges read what ``OutboxDepthReader`` last read from the store, never the store itself: a collection
runs on the metric reader's thread and must not wait on a database that hangs. A reading older than
``OUTBOX_READING_MAX_AGE_SECONDS`` is not observed (an unknown depth is not 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections import Counter as _Tally
from collections.abc import Awaitable, Callable, Collection, Container, Iterable, Iterator
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.metrics import CALL_DURATION_BUCKETS, METER_NAME
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority

__all__ = [
    "AlertingMetricNames",
    "AlertingPromNames",
    "AlertingMetrics",
    "NotificationResult",
    "OutboxDepth",
    "OutboxDepthReader",
    "ACKNOWLEDGED_STATE",
    "ENDED_SERIES_SECONDS",
    "OUTBOX_READ_INTERVAL_SECONDS",
    "OUTBOX_READING_MAX_AGE_SECONDS",
]

_log = StructuredLogger("otel_monitor.alerting.metrics")

# How long an alert series that ended keeps reading 0 before it is no longer observed: several export intervals.
ENDED_SERIES_SECONDS = 300.0
# How often the outbox's depth is read from the store, and how old a reading may be and still be observed.
OUTBOX_READ_INTERVAL_SECONDS = 15.0
OUTBOX_READING_MAX_AGE_SECONDS = 4 * OUTBOX_READ_INTERVAL_SECONDS


class AlertingMetricNames:
    """Instrument names."""

    ALERTS = "otel_monitor.alerts"
    NOTIFICATIONS = "otel_monitor.notifications"
    OUTBOX_PENDING = "otel_monitor.outbox.pending"
    OUTBOX_OLDEST_PENDING = "otel_monitor.outbox.oldest_pending"
    RULE_EVALUATION_DURATION = "otel_monitor.rule.evaluation.duration"
    RULE_EVALUATION_ERRORS = "otel_monitor.rule.evaluation.errors"
    INCIDENT_TIME_TO_ACKNOWLEDGE = "otel_monitor.incident.time_to_acknowledge"
    INCIDENT_TIME_TO_RESOLVE = "otel_monitor.incident.time_to_resolve"


class AlertingPromNames:
    """The series names the collector's Prometheus exporter gives these instruments (unit and _total suffixes)."""

    ALERTS = "otel_monitor_alerts"
    NOTIFICATIONS = "otel_monitor_notifications_total"
    OUTBOX_PENDING = "otel_monitor_outbox_pending"
    OUTBOX_OLDEST_PENDING = "otel_monitor_outbox_oldest_pending_seconds"
    RULE_EVALUATION_DURATION = "otel_monitor_rule_evaluation_duration_seconds"
    RULE_EVALUATION_ERRORS = "otel_monitor_rule_evaluation_errors_total"
    INCIDENT_TIME_TO_ACKNOWLEDGE = "otel_monitor_incident_time_to_acknowledge_seconds"
    INCIDENT_TIME_TO_RESOLVE = "otel_monitor_incident_time_to_resolve_seconds"


class NotificationResult:
    """Values of the ``result`` label of ``otel_monitor.notifications``."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    ALL = (DELIVERED, RETRY, FAILED)


@dataclass(frozen=True)
class OutboxDepth:
    """One reading of the outbox: pending deliveries and when the oldest of them was queued (None: none)."""

    pending: int
    oldest_created_at: dt.datetime | None


_SeriesKey = tuple[tuple[str, str], ...]


SILENCED_STATE = "silenced"
# The ``state`` label of a firing alert someone acknowledged.
ACKNOWLEDGED_STATE = "acknowledged"
# Incident durations: from a minute to a day.
INCIDENT_DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400)


def _series_of(alert: Alert, silenced: Collection[str] = (), acknowledged: Container[str] = frozenset()) -> _SeriesKey:
    """A silenced alert shows as silenced even when acknowledged: its notifications are held."""
    state = alert.state.value
    if alert.state is AlertState.FIRING and alert.fingerprint in silenced:
        state = SILENCED_STATE
    elif alert.state is AlertState.FIRING and alert.fingerprint in acknowledged:
        state = ACKNOWLEDGED_STATE
    labels = {"rule": alert.rule, "priority": alert.priority.value, "state": state}
    if alert.service:
        labels["service"] = alert.service
    return tuple(sorted(labels.items()))


class AlertingMetrics:
    """Registers the alerting's instruments on ``meter_provider`` (the global one when None).

    The evaluator reports each rule's evaluation (``rule_evaluated``, ``rule_failed``), the Dispatcher each outcome
    it writes (``notification``), the service the active alerts after each pass (``keep_alerts``) and an
    ``OutboxDepthReader`` the outbox's depth (``keep_outbox_depth``); the gauges read what was last kept.
    """

    def __init__(
        self, meter_provider: MeterProvider | None = None, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._alerts: dict[_SeriesKey, int] = {}
        self._ended: dict[_SeriesKey, dt.datetime] = {}  # series whose alerts are gone -> when
        self._depth: OutboxDepth | None = None
        self._depth_read_at: dt.datetime | None = None
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self._notifications = meter.create_counter(
            AlertingMetricNames.NOTIFICATIONS,
            unit="{notification}",
            description="Delivery attempts by channel and result (delivered, retry, failed)",
        )
        self._duration = meter.create_histogram(
            AlertingMetricNames.RULE_EVALUATION_DURATION,
            unit="s",
            description="Time an alert rule's source took to evaluate it",
            explicit_bucket_boundaries_advisory=list(CALL_DURATION_BUCKETS),
        )
        self._errors = meter.create_counter(
            AlertingMetricNames.RULE_EVALUATION_ERRORS,
            unit="{error}",
            description="Alert rule evaluations that failed; the rule's alerts kept their state",
        )
        self._time_to_acknowledge = meter.create_histogram(
            AlertingMetricNames.INCIDENT_TIME_TO_ACKNOWLEDGE,
            unit="s",
            description="Time from an incident's opening to its first acknowledgement",
            explicit_bucket_boundaries_advisory=list(INCIDENT_DURATION_BUCKETS),
        )
        self._time_to_resolve = meter.create_histogram(
            AlertingMetricNames.INCIDENT_TIME_TO_RESOLVE,
            unit="s",
            description="Time from an incident's opening to its resolution",
            explicit_bucket_boundaries_advisory=list(INCIDENT_DURATION_BUCKETS),
        )
        meter.create_observable_gauge(
            AlertingMetricNames.ALERTS,
            [self._observe_alerts],
            unit="{alert}",
            description="Active alerts by rule, priority, service and state; 0 for a while once they end",
        )
        meter.create_observable_gauge(
            AlertingMetricNames.OUTBOX_PENDING,
            [self._observe_pending],
            unit="{notification}",
            description="Deliveries in the outbox not done yet",
        )
        meter.create_observable_gauge(
            AlertingMetricNames.OUTBOX_OLDEST_PENDING,
            [self._observe_oldest_pending],
            unit="s",
            description="Age of the oldest delivery in the outbox not done yet (0 when none)",
        )

    # -- recording --------------------------------------------------------------------------------------------------
    def notification(self, channel: str, result: str) -> None:
        """One delivery attempt's outcome (a ``NotificationResult``)."""
        self._notifications.add(1, {"channel": channel, "result": result})

    def rule_evaluated(self, rule: str, seconds: float) -> None:
        self._duration.record(seconds, {"rule": rule})

    def rule_failed(self, rule: str) -> None:
        self._errors.add(1, {"rule": rule})

    def incident_acknowledged(self, rule: str, priority: Priority, seconds: float) -> None:
        """An incident's first acknowledgement, ``seconds`` after it opened."""
        self._time_to_acknowledge.record(seconds, {"rule": rule, "priority": priority.value})

    def incident_resolved(self, rule: str, priority: Priority, seconds: float) -> None:
        """An incident's resolution, ``seconds`` after it opened."""
        self._time_to_resolve.record(seconds, {"rule": rule, "priority": priority.value})

    def keep_alerts(
        self, alerts: Iterable[Alert], silenced: Collection[str] = (), acknowledged: Container[str] = frozenset()
    ) -> None:
        """The active (pending and firing) alerts now, those of ``silenced`` fingerprints firing as ``silenced``, of
        ``acknowledged`` ones as ``acknowledged``; series of alerts gone since read 0 for a while."""
        now = self._clock()
        current = dict(_Tally(_series_of(alert, silenced, acknowledged) for alert in alerts))
        with self._lock:
            for series in self._alerts.keys() - current.keys():
                self._ended[series] = now
            for series in current:
                self._ended.pop(series, None)
            self._alerts = current

    def keep_outbox_depth(self, depth: OutboxDepth) -> None:
        with self._lock:
            self._depth, self._depth_read_at = depth, self._clock()

    # -- collection ---------------------------------------------------------------------------------------------
    def _observe_alerts(self, _options: CallbackOptions) -> Iterator[Observation]:
        now = self._clock()
        with self._lock:
            for series, at in list(self._ended.items()):
                if (now - at).total_seconds() > ENDED_SERIES_SECONDS:
                    del self._ended[series]
            observed = [*self._alerts.items(), *((series, 0) for series in self._ended)]
        for series, count in observed:
            yield Observation(count, dict(series))

    def _fresh_depth(self) -> OutboxDepth | None:
        with self._lock:
            depth, read_at = self._depth, self._depth_read_at
        if read_at is None or (self._clock() - read_at).total_seconds() > OUTBOX_READING_MAX_AGE_SECONDS:
            return None
        return depth

    def _observe_pending(self, _options: CallbackOptions) -> list[Observation]:
        depth = self._fresh_depth()
        return [] if depth is None else [Observation(depth.pending)]

    def _observe_oldest_pending(self, _options: CallbackOptions) -> list[Observation]:
        depth = self._fresh_depth()
        if depth is None:
            return []
        if depth.oldest_created_at is None:
            return [Observation(0)]
        return [Observation(max((self._clock() - depth.oldest_created_at).total_seconds(), 0.0))]


class OutboxDepthReader:
    """Reads the outbox's depth from the store every ``interval`` seconds into ``AlertingMetrics`` (a task of the
    service): ``read()`` blocks, so it runs on the store's own threads; a failed read is logged once per outage."""

    def __init__(
        self,
        read: Callable[[], Awaitable[OutboxDepth]],
        alerting_metrics: AlertingMetrics,
        *,
        interval: float = OUTBOX_READ_INTERVAL_SECONDS,
    ) -> None:
        self._read = read
        self._metrics = alerting_metrics
        self._interval = interval
        self._failing = False

    async def read_once(self) -> None:
        try:
            depth = await self._read()
        except Exception as exc:
            if not self._failing:
                _log.warning("Outbox depth unreadable; its gauges have no value until it is", reason=repr(exc)[:300])
            self._failing = True
            return
        if self._failing:
            _log.info("Outbox depth readable again")
        self._failing = False
        self._metrics.keep_outbox_depth(depth)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.read_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

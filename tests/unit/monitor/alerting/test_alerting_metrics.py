"""The alerting's own metrics: active alerts, notifications by channel and result, outbox depth, rule evaluations."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.evaluate.evaluator import Evaluator
from otel_monitor.monitor.alerting.evaluate.sources import Sample, SourceError, SourceUnavailable
from otel_monitor.monitor.alerting.metrics import (
    ENDED_SERIES_SECONDS,
    OUTBOX_READING_MAX_AGE_SECONDS,
    AlertingMetricNames,
    AlertingMetrics,
    NotificationResult,
    OutboxDepth,
    OutboxDepthReader,
)
from otel_monitor.monitor.alerting.model import AlertState, Priority, Rule
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.service import AlertingService
from otel_monitor.monitor.alerting.state import AlertStore
from otel_monitor.testing import CapturedTelemetry, in_memory_telemetry
from tests.support.alerts import Conditions, make_alert
from tests.support.clocks import Clock

T0 = dt.datetime(2025, 10, 20, 10, 30, tzinfo=dt.UTC)
GEMINI_FIRING = {"rule": "ProviderInvalidKey", "priority": "P0", "service": "gemini", "state": "firing"}
GEMINI_PENDING = {**GEMINI_FIRING, "state": "pending"}


def rule(name: str, priority: Priority = Priority.P0, **fields) -> Rule:
    return Rule(
        name=name,
        priority=priority,
        source="check",
        expr=f"health.{name.lower()}",
        clear_for_seconds=0,
        interval_seconds=1,
        error_code="REDIS_CONNECTION_FAILED",
        summary="s",
        action_required="a",
        runbook="r",
        **fields,
    )


def metrics_at(clock: Clock) -> tuple[AlertingMetrics, CapturedTelemetry]:
    captured = in_memory_telemetry()
    return AlertingMetrics(captured.meter_provider, clock=clock), captured


def alert_series(captured: CapturedTelemetry) -> dict[tuple, float]:
    return captured.points(AlertingMetricNames.ALERTS)


def key(labels: dict) -> tuple:
    return tuple(sorted(labels.items()))


# -- the alerts gauge -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "steps, expected",
    [
        # one firing alert: one series at 1, labelled by rule, priority, service and state
        ([(0, [make_alert()])], {key(GEMINI_FIRING): 1}),
        # two alerts of one rule and service (other labels differ): the series counts both
        (
            [(0, [make_alert(), make_alert(fingerprint="f2", labels={"service": "gemini", "model": "pro"})])],
            {key(GEMINI_FIRING): 2},
        ),
        # an alert without a service has no service label
        (
            [(0, [make_alert(labels={})])],
            {key({"rule": "ProviderInvalidKey", "priority": "P0", "state": "firing"}): 1},
        ),
        # pending, then firing: the pending series reads 0, the firing one 1
        (
            [(0, [make_alert(AlertState.PENDING)]), (5, [make_alert()])],
            {key(GEMINI_PENDING): 0, key(GEMINI_FIRING): 1},
        ),
        # resolved: the series reads 0 while the exporter may still hold its last value ...
        ([(0, [make_alert()]), (5, [])], {key(GEMINI_FIRING): 0}),
        # ... then is no longer observed
        ([(0, [make_alert()]), (5, []), (5 + ENDED_SERIES_SECONDS + 1, [])], {}),
        # firing again before that: back to 1
        ([(0, [make_alert()]), (5, []), (10, [make_alert()])], {key(GEMINI_FIRING): 1}),
    ],
)
def test_alerts_gauge_shows_active_alerts_and_zeroes_ended_ones(steps, expected):
    """Each kept set of active alerts is observed by rule, priority, service and state; series that end read 0,
    then disappear."""
    clock = Clock(T0)
    metrics, captured = metrics_at(clock)
    for seconds, alerts in steps:
        clock.now = T0 + dt.timedelta(seconds=seconds)
        metrics.keep_alerts(alerts)
        alert_series(captured)  # a collection after each step, as the periodic reader does
    assert alert_series(captured) == expected


# -- the outbox gauges ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reading, read_seconds_ago, pending, oldest_seconds",
    [
        (None, 0, None, None),  # nothing read yet: no value (unknown is not 0)
        (OutboxDepth(0, None), 0, 0, 0),
        (OutboxDepth(3, T0 - dt.timedelta(seconds=90)), 10, 3, 90),
        (OutboxDepth(3, T0), OUTBOX_READING_MAX_AGE_SECONDS + 1, None, None),  # too old a reading: no value
    ],
)
def test_outbox_gauges_report_the_last_fresh_reading(reading, read_seconds_ago, pending, oldest_seconds):
    """Pending deliveries and the oldest one's age (at collection time) come from the last reading, if fresh."""
    clock = Clock(T0 - dt.timedelta(seconds=read_seconds_ago))
    metrics, captured = metrics_at(clock)
    if reading is not None:
        metrics.keep_outbox_depth(reading)
    clock.now = T0
    points = captured.collect()
    assert points.value(AlertingMetricNames.OUTBOX_PENDING) == pending
    assert points.value(AlertingMetricNames.OUTBOX_OLDEST_PENDING) == oldest_seconds


def test_outbox_depth_reader_keeps_readings_and_survives_a_failing_store():
    """A failed read keeps nothing (the last reading ages out); the next good read is kept."""
    clock = Clock(T0)
    metrics, captured = metrics_at(clock)
    answers: list[OutboxDepth | Exception] = [OutboxDepth(2, T0), RuntimeError("database is locked")]

    async def read() -> OutboxDepth:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    reader = OutboxDepthReader(read, metrics)
    asyncio.run(reader.read_once())
    assert captured.metric_value(AlertingMetricNames.OUTBOX_PENDING) == 2
    clock.advance(OUTBOX_READING_MAX_AGE_SECONDS + 1)
    asyncio.run(reader.read_once())
    assert captured.metric_value(AlertingMetricNames.OUTBOX_PENDING) is None


def test_outbox_pending_depth_counts_pending_rows_and_their_oldest(tmp_path):
    """The store's reading: pending rows only, and when the oldest was queued."""
    clock = Clock(T0)
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.db'}", clock=clock)
    try:
        assert outbox.pending_depth() == (0, None)
        outbox.enqueue(make_alert(), "firing", ["hook", "mail"])
        clock.advance(30)
        outbox.enqueue(make_alert(fingerprint="f2"), "firing", ["hook"])
        assert outbox.pending_depth() == (3, T0)
    finally:
        outbox.close()
        outbox.executor.shutdown()


# -- notifications --------------------------------------------------------------------------------------------------
class Answers:
    """A notifier answering each notification with the next of ``results``."""

    def __init__(self, name: str, *results: DeliveryResult) -> None:
        self.name = name
        self._results = list(results)

    async def notify(self, notification: Notification) -> DeliveryResult:
        return self._results.pop(0)


OK = DeliveryResult(ok=True, detail="HTTP 200")
RETRY = DeliveryResult(ok=False, retryable=True, detail="HTTP 503")
REFUSED = DeliveryResult(ok=False, retryable=False, detail="HTTP 400")


def test_dispatcher_counts_each_outcome_by_channel_and_result(tmp_path):
    """Every outcome written to the outbox counts once: delivered, retry (due again) or failed (refused)."""
    clock = Clock(T0)
    captured = in_memory_telemetry()
    metrics = AlertingMetrics(captured.meter_provider, clock=clock)
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.db'}", clock=clock)
    notifiers = {"hook": Answers("hook", RETRY, OK), "mail": Answers("mail", REFUSED)}
    dispatcher = Dispatcher(outbox, notifiers, clock=clock, metrics=metrics)

    async def scenario() -> None:
        await outbox.executor.run(outbox.enqueue, make_alert(), "firing", ["hook", "mail"])
        await dispatcher.run_once()
        clock.advance(60)  # past the retry's backoff
        await dispatcher.run_once()

    try:
        asyncio.run(scenario())
    finally:
        outbox.close()
        outbox.executor.shutdown()
    assert captured.points(AlertingMetricNames.NOTIFICATIONS) == {
        key({"channel": "hook", "result": NotificationResult.RETRY}): 1,
        key({"channel": "hook", "result": NotificationResult.DELIVERED}): 1,
        key({"channel": "mail", "result": NotificationResult.FAILED}): 1,
    }


# -- rule evaluations -----------------------------------------------------------------------------------------------
class Failing:
    """A check source whose rules named in ``errors`` raise that error."""

    name = "check"

    def __init__(self, errors: dict[str, Exception]) -> None:
        self.errors = errors

    async def evaluate(self, rule: Rule) -> list[Sample]:
        if rule.name in self.errors:
            raise self.errors[rule.name]
        return [Sample({})]


def test_evaluator_times_each_rule_and_counts_its_errors():
    """Every evaluation of a rule is timed by rule; those whose source failed are counted by rule too."""
    clock = Clock(T0)
    captured = in_memory_telemetry()
    rules = [rule("Ok"), rule("BadQuery"), rule("BackendDown")]
    source = Failing({"BadQuery": SourceError("parse error"), "BackendDown": SourceUnavailable("prom", "refused")})
    evaluator = Evaluator(rules, {"check": source}, clock, metrics=AlertingMetrics(captured.meter_provider))

    async def two_passes() -> None:
        await evaluator.evaluate_once(T0)
        await evaluator.evaluate_once(T0 + dt.timedelta(seconds=1))

    asyncio.run(two_passes())
    points = captured.collect()
    assert points.values_by(AlertingMetricNames.RULE_EVALUATION_DURATION, "rule") == {
        "Ok": 2,
        "BadQuery": 2,
        "BackendDown": 2,
    }
    assert points.values_by(AlertingMetricNames.RULE_EVALUATION_ERRORS, "rule") == {"BadQuery": 2, "BackendDown": 2}


# -- the service ----------------------------------------------------------------------------------------------------
def test_service_keeps_its_alerts_and_outbox_depth_for_the_gauges(tmp_path):
    """After a pass the firing P0 is on the alerts gauge and its queued notification on the outbox gauges."""
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    clock = Clock(T0)
    captured = in_memory_telemetry()
    metrics = AlertingMetrics(captured.meter_provider, clock=clock)
    delivery = DeliveryConfig.model_validate(
        {"channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}}, "routing": {"P0": ["hook"]}}
    )
    conditions = Conditions()
    outbox = Outbox(url, clock=clock)
    service = AlertingService(
        [rule("RedisDown", labels={"service": "redis"})],
        {"check": conditions},
        outbox,
        Dispatcher.from_config(outbox, delivery, {}),
        delivery,
        clock=clock,
        state=AlertStore(url, clock=clock),
        metrics=metrics,
    )

    async def scenario() -> None:
        await service.restore()
        conditions.holding.add("RedisDown")
        await service.evaluate_once(T0)
        await OutboxDepthReader(service.outbox_depth, metrics).read_once()
        clock.advance(12)
        await service.stop()

    asyncio.run(scenario())
    points = captured.collect()
    firing = {"rule": "RedisDown", "priority": "P0", "service": "redis", "state": "firing"}
    assert points.points(AlertingMetricNames.ALERTS) == {key(firing): 1}
    assert points.value(AlertingMetricNames.OUTBOX_PENDING) == 1
    assert points.value(AlertingMetricNames.OUTBOX_OLDEST_PENDING) == 12

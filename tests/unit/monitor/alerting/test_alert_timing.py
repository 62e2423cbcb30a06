"""The required deadlines on an injected clock, with the shipped rules and the default cadences: a P1 condition reaches
its digest within 60 minutes plus the rule's ``for`` wherever in the hour it starts, a P0 (disk included) within
seconds, and P1/P2 transitions are logged at WARNING the moment they happen."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from otel_monitor.monitor.alerting.delivery.digest import DEFAULT_DIGEST_PERIOD, DigestStore, period_start
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.evaluate.evaluator import default_interval
from otel_monitor.monitor.alerting.evaluate.sources import Sample
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.monitor.alerting.service import AlertingService
from otel_monitor.monitor.alerting.state import AlertStore
from otel_monitor.monitor.quota.config import QuotaConfig
from tests.support.clocks import Clock

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = {rule.name: rule for rule in load_rules("config/alert-rules.yaml", promtool=None)}
DELIVERY = DeliveryConfig.model_validate(
    {
        "channels": {"log": {"type": "log_file"}, "ops": {"type": "console"}},
        "routing": {"P0": ["log", "ops"], "P1": ["ops"], "P2": ["ops"]},
    }
)
# From a change in the backend to the series in Prometheus: the backend's metric export interval (10 s) plus the
# scrape interval (5 s) of config/prometheus.yml, with a margin.
PIPELINE_SECONDS = 30.0
# Quota readings: polled at least every 15 minutes once above 80 % (the quota service), then exported and scraped.
QUOTA_POLL_SECONDS = QuotaConfig().youtube.poll_interval_seconds
STEP = dt.timedelta(seconds=5)


class ScriptedSource:
    """A source whose condition holds from ``visible_at`` on: the moment the backend's data shows it."""

    name = "scripted"

    def __init__(self, visible_at: dt.datetime, clock: Clock, labels: dict[str, str]) -> None:
        self._visible_at = visible_at
        self._clock = clock
        self._labels = labels

    async def evaluate(self, rule):
        return [Sample(dict(self._labels), 1.0)] if self._clock() >= self._visible_at else []


async def _digest_delay(tmp_path, rule_name: str, onset: dt.datetime, visible_at: dt.datetime) -> dt.timedelta:
    """How long after ``onset`` the digest holding the rule's firing is handed over, the service driven every 5 s
    with the evaluator's own cadence and the digest flushed just after each period's end (as its loop does)."""
    rule = RULES[rule_name]
    clock = Clock(T0)
    url = f"sqlite:///{tmp_path / f'{rule_name}-{onset:%H%M%S}.db'}"
    outbox = Outbox(url, clock=clock)
    service = AlertingService(
        [rule],
        {rule.source: ScriptedSource(visible_at, clock, {"service": "gemini"})},
        outbox,
        Dispatcher.from_config(outbox, DELIVERY, {}),
        DELIVERY,
        clock=clock,
        state=AlertStore(url, clock=clock),
        digests=DigestStore(url, clock=clock),
    )
    next_flush = period_start(T0) + DEFAULT_DIGEST_PERIOD + dt.timedelta(seconds=1)
    try:
        while clock.now < onset + dt.timedelta(hours=3):
            await service.evaluate_once(clock.now)
            if clock.now >= next_flush:
                sent = await service.digest.flush()
                if any(entry.alert.rule == rule_name for digest in sent for entry in digest.digest):
                    return clock.now - onset
                next_flush += DEFAULT_DIGEST_PERIOD
            clock.now += STEP
    finally:
        await service.stop()
    raise AssertionError(f"{rule_name} never reached a digest")


# Onsets across an hour, right after an evaluation, a period's start and a period's end.
ONSETS = [T0 + dt.timedelta(minutes=m, seconds=s) for m, s in [(0, 1), (7, 31), (29, 59), (30, 2), (44, 17), (59, 58)]]


@pytest.mark.asyncio
@pytest.mark.parametrize("onset", ONSETS, ids=lambda o: f"{o:%M:%S}")
@pytest.mark.parametrize(
    ("rule_name", "lag_seconds"),
    [
        pytest.param("ApiErrorRateHigh", PIPELINE_SECONDS, id="error-rate"),
        pytest.param("ProjectSuccessRateLow", PIPELINE_SECONDS, id="project-success"),
        pytest.param("CeleryQueueBacklog", PIPELINE_SECONDS, id="celery-queue-for-5min"),
        pytest.param("GeminiQuotaLow", QUOTA_POLL_SECONDS + PIPELINE_SECONDS, id="quota-polled-every-15min"),
    ],
)
async def test_p1_reaches_its_digest_within_the_hour(tmp_path, rule_name, lag_seconds, onset):
    """Wherever in the hour a P1 condition starts, its digest goes out within 60 minutes plus the rule's ``for``
    (worst case: the data's lag, one evaluation interval, the ``for`` and one digest period)."""
    rule = RULES[rule_name]
    assert rule.priority is Priority.P1
    delay = await _digest_delay(tmp_path, rule_name, onset, onset + dt.timedelta(seconds=lag_seconds))
    assert delay <= dt.timedelta(minutes=60, seconds=rule.for_seconds)
    worst = lag_seconds + default_interval(rule) + rule.for_seconds + DEFAULT_DIGEST_PERIOD.total_seconds()
    assert worst <= 3600 + rule.for_seconds  # the bound holds for every onset, not only the ones simulated


@pytest.mark.parametrize(
    "rule", [rule for rule in RULES.values() if rule.priority is Priority.P1], ids=lambda rule: rule.name
)
def test_every_p1_rule_fits_the_hour(rule):
    """Every shipped P1 rule is evaluated often enough that detection plus a digest period fits in the hour."""
    lag = QUOTA_POLL_SECONDS + PIPELINE_SECONDS
    assert lag + default_interval(rule) + DEFAULT_DIGEST_PERIOD.total_seconds() <= 3600


@pytest.mark.parametrize(
    "rule", [rule for rule in RULES.values() if rule.priority is Priority.P0], ids=lambda rule: rule.name
)
def test_every_p0_rule_is_evaluated_within_seconds(rule):
    """Every shipped P0 rule, the disk one included, is evaluated at the P0 cadence (at most every 5 s)."""
    assert default_interval(rule) <= 5


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("priority", "rule_name"), [(Priority.P1, "ApiErrorRateHigh"), (Priority.P2, "GeminiLatencyP50High")]
)
async def test_p1_and_p2_transitions_are_logged_at_once(tmp_path, caplog, priority, rule_name):
    """A P1 or P2 firing is logged at WARNING in the required shape the moment it fires, and so is its resolution; a
    P2 is also queued for the P2 channels at once, a P1 waits for its digest."""
    rule = RULES[rule_name].model_copy(update={"clear_for_seconds": 0})
    clock = Clock(T0)
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    outbox = Outbox(url, clock=clock)
    source = ScriptedSource(T0, clock, {"service": "gemini"})
    service = AlertingService(
        [rule],
        {rule.source: source},
        outbox,
        Dispatcher.from_config(outbox, DELIVERY, {}),
        DELIVERY,
        clock=clock,
        state=AlertStore(url, clock=clock),
        digests=DigestStore(url, clock=clock),
    )
    try:
        with caplog.at_level(logging.INFO, logger="otel_monitor.alerts"):
            await service.evaluate_once(T0)
            (fired,) = [r for r in caplog.records if r.getMessage().startswith(f"{priority.value} Alert:")]
            assert fired.levelno == logging.WARNING
            assert (fired.alert_priority, fired.error_code) == (priority.value, rule.error_code)
            assert fired.details["service"] == "gemini" and fired.details["action_required"] == rule.action_required
            queued = [(e.notification.alert.rule, e.channel) for e in outbox.entries()]
            assert queued == ([(rule_name, "ops")] if priority is Priority.P2 else [])
            assert service.digest.pending() == (1 if priority is Priority.P1 else 0)

            source._visible_at = T0 + dt.timedelta(days=1)
            clock.now = T0 + dt.timedelta(minutes=20)
            await service.evaluate_once(clock.now)
        (resolved,) = [r for r in caplog.records if r.getMessage().startswith(f"{priority.value} Resolved:")]
        assert resolved.levelno == logging.WARNING and resolved.alert_state == "resolved"
    finally:
        await service.stop()


@pytest.mark.asyncio
async def test_p1_quota_line_carries_the_quota(tmp_path, caplog):
    """A quota P1's line has the required details: quota_remaining, quota_total, quota_percentage, reset_date."""
    from otel_monitor.monitor.alerting.quota_details import quota_details
    from otel_monitor.monitor.quota.service import QuotaView

    rule = RULES["DIdQuotaLow"]
    reset = dt.datetime(2026, 4, 1, tzinfo=UTC)
    view = QuotaView("d-id", 92, 100, "credits", 92.0, "critical", reset, None, False, None, T0)
    clock = Clock(T0)
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    outbox = Outbox(url, clock=clock)
    service = AlertingService(
        [rule],
        {rule.source: ScriptedSource(T0, clock, {"service": "d-id"})},
        outbox,
        Dispatcher.from_config(outbox, DELIVERY, {}),
        DELIVERY,
        clock=clock,
        state=AlertStore(url, clock=clock),
        digests=DigestStore(url, clock=clock),
        transition_details=quota_details(lambda: [view]),
    )
    try:
        with caplog.at_level(logging.WARNING, logger="otel_monitor.alerts"):
            await service.evaluate_once(T0)
    finally:
        await service.stop()
    (line,) = [r for r in caplog.records if r.getMessage().startswith("P1 Alert:")]
    assert {
        k: line.details[k] for k in ("service", "quota_remaining", "quota_total", "quota_percentage", "reset_date")
    } == {
        "service": "d-id",
        "quota_remaining": 8,
        "quota_total": 100,
        "quota_percentage": 8,
        "reset_date": "2026-04-01T00:00:00Z",
    }

"""Acknowledgement, repeat and escalation of a firing P0 on an injected clock: repeats at the interval, steps at
their times, nothing once acknowledged, a stale acknowledgement re-notifies, a restart does not page again."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_monitor.monitor.alerting.acknowledgement import AcknowledgementStore, paging_notification
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.escalation import EscalationPolicy, EscalationStore
from otel_monitor.monitor.alerting.incidents import IncidentStatus, IncidentStore
from otel_monitor.monitor.alerting.metrics import AlertingMetricNames, AlertingMetrics
from otel_monitor.monitor.alerting.model import AlertState, Priority, Rule
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers.console import format_console_line
from otel_monitor.monitor.alerting.notifiers.discord import discord_payload
from otel_monitor.monitor.alerting.notifiers.email import email_message
from otel_monitor.monitor.alerting.notifiers.pagerduty import pagerduty_event
from otel_monitor.monitor.alerting.notifiers.sentry import sentry_event
from otel_monitor.monitor.alerting.notifiers.slack import slack_payload
from otel_monitor.monitor.alerting.notifiers.webhook import webhook_payload
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.service import AlertingService, NotFiring
from otel_monitor.monitor.alerting.silences.matchers import parse_matcher
from otel_monitor.monitor.alerting.state import AlertStore
from otel_monitor.monitor.config import AlertingConfig, MonitorConfig
from tests.support.alerts import Conditions, gemini_key_rule, make_alert
from tests.support.clocks import Clock

T0 = dt.datetime(2025, 10, 20, 10, 30, tzinfo=dt.UTC)
PUBLIC_URL = "https://monitor.example"
KEY_INVALID = gemini_key_rule(interval_seconds=1)
_HOOK = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
DELIVERY = DeliveryConfig.model_validate(
    {"channels": {"hook": _HOOK, "pager": _HOOK, "team": _HOOK}, "routing": {"P0": ["hook"]}}
)
POLICY = EscalationPolicy.model_validate(
    {
        "repeat_interval_seconds": 1800,
        "steps": [{"after_seconds": 900, "channels": ["pager"]}, {"after_seconds": 2700, "channels": ["team"]}],
    }
)


class Monitor:
    """An AlertingService on ``url`` and ``clock``, P0 repeated and escalated by ``POLICY``, in production."""

    def __init__(self, url: str, clock: Clock, conditions: Conditions, *, rule: Rule = KEY_INVALID) -> None:
        self.clock = clock
        self.metrics_reader = InMemoryMetricReader()
        outbox = Outbox(url, clock=clock)
        self.service = AlertingService(
            [rule],
            {"check": conditions},
            outbox,
            Dispatcher.from_config(outbox, DELIVERY, {}),
            DELIVERY,
            clock=clock,
            state=AlertStore(url, clock=clock),
            incidents=IncidentStore(url, clock=clock),
            environment="production",
            acknowledgements=AcknowledgementStore(url, clock=clock),
            escalations=EscalationStore(url, clock=clock),
            escalation={Priority.P0: POLICY},
            public_url=PUBLIC_URL,
            metrics=AlertingMetrics(MeterProvider(metric_readers=[self.metrics_reader]), clock=clock),
        )

    async def at(self, seconds: float) -> None:
        """The clock at T0 + ``seconds``, one evaluation pass and one escalation check."""
        self.clock.now = T0 + dt.timedelta(seconds=seconds)
        await self.service.evaluate_once()
        await self.service.escalator.check_once()

    def sent(self) -> list[tuple[str, str]]:
        """(channel, title) of every queued notification, in order."""
        return [(e.channel, e.notification.title) for e in self.service.outbox.entries()]

    def fingerprint(self) -> str:
        (alert,) = self.service.alerts()
        return alert.fingerprint

    def alert_states(self) -> set[str]:
        data = self.metrics_reader.get_metrics_data()
        return {
            point.attributes["state"]
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == AlertingMetricNames.ALERTS
            for point in metric.data.data_points
            if point.value
        }


FIRED = ("hook", "P0 Alert: Gemini rejects the API key")


def repeat(n: int, channel: str = "hook") -> tuple[str, str]:
    return (channel, f"P0 Alert (repeat {n}): Gemini rejects the API key")


def run(url: str, scenario, *, rule: Rule = KEY_INVALID):
    """Runs ``scenario(monitor, conditions)`` on a fresh Monitor whose P0 condition holds; stops it after."""
    conditions = Conditions()
    conditions.holding.add(rule.name)
    monitor = Monitor(url, Clock(T0), conditions, rule=rule)

    async def main():
        await monitor.service.restore()
        try:
            return await scenario(monitor, conditions)
        finally:
            await monitor.service.stop()

    return asyncio.run(main())


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'monitor.db'}"


def test_unacknowledged_p0_repeats_at_the_interval_and_escalates_at_each_step(url):
    """Fired at 0: pager at 900 s, repeat 1 at 1800 s, team at 2700 s, repeat 2 at 3600 s; nothing in between."""

    async def scenario(monitor, _conditions):
        timeline = {}
        for seconds in (0, 899, 900, 1799, 1800, 2699, 2700, 3599, 3600):
            await monitor.at(seconds)
            timeline[seconds] = monitor.sent()
        return timeline

    timeline = run(url, scenario)
    assert timeline[0] == timeline[899] == [FIRED]
    assert timeline[900] == timeline[1799] == [FIRED, ("pager", FIRED[1])]
    assert timeline[1800] == timeline[2699] == [FIRED, ("pager", FIRED[1]), repeat(1)]
    assert timeline[2700] == timeline[3599] == [FIRED, ("pager", FIRED[1]), repeat(1), ("team", FIRED[1])]
    assert timeline[3600] == [*timeline[2700], repeat(2)]


def test_repeats_and_steps_count_from_the_firing_not_the_pending_start(url):
    """Pending for 300 s, the P0 fires at 300 s: its step at 1200 s, its first repeat at 2100 s."""

    async def scenario(monitor, _conditions):
        timeline = {}
        for seconds in (0, 300, 1199, 1200, 2099, 2100):
            await monitor.at(seconds)
            timeline[seconds] = monitor.sent()
        return timeline

    timeline = run(url, scenario, rule=KEY_INVALID.model_copy(update={"for_seconds": 300}))
    assert timeline[300] == timeline[1199] == [FIRED]
    assert timeline[1200] == timeline[2099] == [FIRED, ("pager", FIRED[1])]
    assert timeline[2100] == [FIRED, ("pager", FIRED[1]), repeat(1)]


def test_every_repeat_has_its_own_id_and_the_firing_p0_links_to_its_ack(url):
    """Each repeat is a new notification id (the outbox queues it); every firing P0 carries its ack link."""

    async def scenario(monitor, _conditions):
        for seconds in (0, 1800, 3600):
            await monitor.at(seconds)
        return monitor.service.outbox.entries(), monitor.fingerprint()

    entries, fingerprint = run(url, scenario)
    routed = [entry for entry in entries if entry.channel == "hook"]
    assert len({entry.notification.id for entry in routed}) == 3
    assert [entry.notification.repeat for entry in routed] == [0, 1, 2]
    for entry in entries:
        assert entry.notification.details()["ack_url"] == f"{PUBLIC_URL}/alerts/{fingerprint}"


@pytest.mark.parametrize(
    "ack_at, until, expected",
    [
        pytest.param(10, None, [FIRED], id="acknowledged-for-good"),
        pytest.param(1000, None, [FIRED, ("pager", FIRED[1])], id="acknowledged-after-the-first-step"),
        # Stale at 2000 s: repeat 1 at once, then again every 1800 s; the steps count from 2000 s.
        pytest.param(10, 2000, [FIRED, repeat(1), ("pager", FIRED[1]), repeat(2)], id="stale-ack-notifies-again"),
    ],
)
def test_acknowledged_p0_neither_repeats_nor_escalates_until_its_ack_goes_stale(url, ack_at, until, expected):
    """Acknowledged, the P0 stays quiet; a stale acknowledgement (still firing past ``until``) re-notifies at once
    and counts as ended."""

    async def scenario(monitor, _conditions):
        await monitor.at(0)
        if ack_at > 900:
            await monitor.at(900)
        monitor.clock.now = T0 + dt.timedelta(seconds=ack_at)
        until_at = None if until is None else T0 + dt.timedelta(seconds=until)
        await monitor.service.acknowledge(monitor.fingerprint(), by="alice", comment="on it", until=until_at)
        acked_states = monitor.alert_states()
        for seconds in (1800, 2000, 2900, 3799, 3800):
            await monitor.at(seconds)
        standing = await monitor.service.standing_acks(monitor.service.alerts())
        return monitor.sent(), acked_states, standing, monitor.alert_states()

    sent, acked_states, standing, states_after = run(url, scenario)
    assert sent == expected
    assert acked_states == {"acknowledged"}
    if until is None:
        assert set(standing) and states_after == {"acknowledged"}
    else:
        assert standing == {} and states_after == {"firing"}


def test_restart_does_not_page_again(url):
    """A monitor restarted on the same store sends neither a repeat nor a step it had sent already."""

    async def first(monitor, _conditions):
        for seconds in (0, 900, 1800):
            await monitor.at(seconds)
        return monitor.sent()

    async def second(monitor, _conditions):
        for seconds in (1801, 2000):
            await monitor.at(seconds)
        return monitor.sent()

    before = run(url, first)
    assert run(url, second) == before == [FIRED, ("pager", FIRED[1]), repeat(1)]


def test_channels_reached_by_escalation_get_the_resolution_and_repeats_stop(url):
    """Once resolved, the routed channel and the escalated one get the resolved notification; nothing repeats."""

    async def scenario(monitor, conditions):
        await monitor.at(0)
        await monitor.at(900)
        conditions.holding.clear()
        await monitor.at(1000)
        await monitor.at(5000)
        return monitor.sent()

    resolved = "P0 Resolved: Gemini rejects the API key"
    assert run(url, scenario) == [FIRED, ("pager", FIRED[1]), ("hook", resolved), ("pager", resolved)]


def test_silenced_alert_neither_repeats_nor_escalates(url):
    """A P0 silenced after it paged is left alone by repeat and escalation: a silence holds its notifications."""

    async def scenario(monitor, _conditions):
        await monitor.at(0)
        silences = monitor.service.silences
        now = monitor.clock()
        silences.store.add(
            (parse_matcher("service=gemini"),),
            starts_at=now,
            ends_at=now + dt.timedelta(days=1),
            comment="rotating the key",
            author="ana",
        )
        silences.invalidate()
        for seconds in (900, 1800, 3600):
            await monitor.at(seconds)
        return monitor.sent()

    assert run(url, scenario) == [FIRED]


def test_ack_of_an_alert_not_firing_is_refused_and_until_must_be_ahead(url):
    """No firing alert with the fingerprint: NotFiring; an ``until`` already past: ValueError."""

    async def scenario(monitor, _conditions):
        with pytest.raises(NotFiring):
            await monitor.service.acknowledge("nope", by="alice")
        await monitor.at(0)
        with pytest.raises(ValueError, match="future"):
            await monitor.service.acknowledge(monitor.fingerprint(), by="alice", until=T0)

    run(url, scenario)


def test_incident_timeline_and_times_to_acknowledge_and_resolve(url):
    """The incident goes open -> acknowledged -> resolved with every step on its timeline, and its times to
    acknowledge and resolve are recorded and exported."""

    async def scenario(monitor, conditions):
        await monitor.at(0)
        await monitor.at(900)
        monitor.clock.now = T0 + dt.timedelta(seconds=1200)
        await monitor.service.acknowledge(monitor.fingerprint(), by="alice", comment="rotating the key")
        (incident,) = await monitor.service.incidents()
        acknowledged = incident.status
        await monitor.service.note(incident.id, author="bob", text="key rotated")
        conditions.holding.clear()
        await monitor.at(1500)
        return acknowledged, await monitor.service.incident(incident.id), monitor.metrics_reader.get_metrics_data()

    acknowledged, incident, data = run(url, scenario)
    assert acknowledged is IncidentStatus.ACKNOWLEDGED
    assert incident.status is IncidentStatus.RESOLVED
    assert (incident.time_to_acknowledge, incident.time_to_resolve) == (1200.0, 1500.0)
    assert [(e.kind.value, e.author, e.text) for e in incident.timeline] == [
        ("opened", None, "P0 GeminiInvalidApiKey fired"),
        ("alert_firing", None, "Gemini rejects the API key"),
        ("escalated", None, "step 1: sent to pager"),
        ("acknowledged", "alice", "rotating the key"),
        ("note", "bob", "key rotated"),
        ("alert_resolved", None, "Gemini rejects the API key"),
        ("resolved", None, "the alert resolved"),
    ]
    histograms = {
        metric.name: [(dict(p.attributes), p.sum) for p in metric.data.data_points]
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name.startswith("otel_monitor.incident.")
    }
    labels = {"rule": "GeminiInvalidApiKey", "priority": "P0"}
    assert histograms == {
        AlertingMetricNames.INCIDENT_TIME_TO_ACKNOWLEDGE: [(labels, 1200.0)],
        AlertingMetricNames.INCIDENT_TIME_TO_RESOLVE: [(labels, 1500.0)],
    }


@pytest.mark.parametrize(
    "escalation, problem",
    [
        ({"P0": {"steps": [{"after_seconds": 60, "channels": ["pagerduty"]}]}}, "unknown channel 'pagerduty'"),
        ({"P0": {"repeat_interval_seconds": 0}}, "greater than 0"),
        ({"P0": {"steps": [{"after_seconds": 60, "channels": []}]}}, "at least 1 item"),
        (
            {
                "P0": {
                    "steps": [{"after_seconds": 600, "channels": ["hook"]}, {"after_seconds": 60, "channels": ["hook"]}]
                }
            },
            "in the order of their after_seconds",
        ),
        ({"P0": {"repeat_every": 60}}, "Extra inputs are not permitted"),
    ],
)
def test_escalation_config_is_validated(escalation, problem):
    """Step channels must be configured channels, intervals positive, steps in order, keys known."""
    with pytest.raises(ValueError, match=problem):
        AlertingConfig.model_validate(
            {"delivery": {"channels": {"hook": _HOOK}, "routing": {"P0": ["hook"]}}, "escalation": escalation}
        )


def test_defaults_repeat_a_p0_every_half_hour_and_link_to_the_served_port():
    """By default a P0 repeats every 30 minutes with no escalation step; P1 and P2 never repeat; the ack links
    point at the server's own address unless ``server.public_url`` says otherwise."""
    config = MonitorConfig()
    assert config.alerting.escalation == {Priority.P0: EscalationPolicy(repeat_interval_seconds=1800)}
    assert config.server.public_base_url == "http://127.0.0.1:8080"
    public = MonitorConfig.model_validate({"server": {"public_url": "https://monitor.example"}})
    assert public.server.public_base_url == "https://monitor.example"


LINKED = paging_notification(make_alert(), "firing", public_url=PUBLIC_URL, repeat=2)


@pytest.mark.parametrize(
    "channel, render",
    [
        ("webhook", lambda n: json.dumps(webhook_payload(n))),
        ("slack", lambda n: json.dumps(slack_payload(n))),
        ("discord", lambda n: json.dumps(discord_payload(n))),
        ("pagerduty", lambda n: json.dumps(pagerduty_event(n, "key", "otel-monitor"))),
        ("sentry", lambda n: json.dumps(sentry_event(n), default=str)),
        ("email", lambda n: email_message(n, "a@example.org", ["b@example.org"]).as_string()),
        ("console", format_console_line),
    ],
)
def test_channels_show_the_repeat_and_the_ack_link(channel, render):
    """Every channel that shows a notification's details shows its ack link and its repeat count."""
    shown = render(LINKED)
    assert f"{PUBLIC_URL}/alerts/{LINKED.alert.fingerprint}" in shown, channel
    assert "repeat" in shown, channel


def test_ack_link_and_repeat_round_trip_and_resolved_has_no_link():
    """The outbox's JSON form keeps the link and the repeat; a resolved P0 and a P1 carry no link."""
    assert Notification.from_json(LINKED.to_json()) == LINKED
    assert LINKED.title == "P0 Alert (repeat 2): API Key Invalid"
    resolved = paging_notification(make_alert(AlertState.RESOLVED), "resolved", public_url=PUBLIC_URL)
    p1 = paging_notification(make_alert(priority=Priority.P1), "firing", public_url=PUBLIC_URL)
    assert resolved.ack_url is None and p1.ack_url is None
    assert resolved.id == Notification.of(make_alert(AlertState.RESOLVED), "resolved").id

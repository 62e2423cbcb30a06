"""Alertmanager that works: live alerts re-posted so a real Alertmanager keeps them past its resolve_timeout,
conventional labels and annotations, and the webhook channel's ``format: alertmanager`` equal to Alertmanager's own."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from pathlib import Path

import pytest

from otel_monitor.monitor.alerting.delivery import alertmanager_refresh
from otel_monitor.monitor.alerting.delivery.alertmanager_refresh import (
    AlertmanagerRefresher,
    RefreshedChannel,
    announced_firing,
)
from otel_monitor.monitor.alerting.delivery.digest import digest_notification
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.model import AlertState, Priority, Rule
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers import (
    AlertmanagerNotifier,
    WebhookNotifier,
    alertmanager_webhook_payload,
    build_notifiers,
)
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.service import AlertingService
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.config_file import ConfigError, load_config_file
from otel_monitor.redaction.scrubber import SecretScrubber
from tests.support.alerts import Conditions, make_alert
from tests.support.clocks import Clock
from tests.support.receivers import ALERTMANAGER, AlertmanagerServer
from tools.devstack import wait_until
from tools.devstack.stack import REPO_ROOT

RESOLVE_TIMEOUT = 3  # seconds: Alertmanager ends an alert nobody posts again after this (its default is 5 min)
RESEND = 1.0  # seconds between refreshes in these tests (the smallest the config allows)
INVALID = REPO_ROOT / "tests" / "testdata" / "config"
T0 = dt.datetime(2025, 10, 20, 10, 30, tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def short_alertmanager(tmp_path):
    """A real Alertmanager whose resolve_timeout is a few seconds."""
    if not Path(ALERTMANAGER).exists():
        pytest.fail(f"{ALERTMANAGER} is not installed (scripts/install-system-packages.sh installs it)")
    server = AlertmanagerServer(tmp_path / "am", resolve_timeout=RESOLVE_TIMEOUT)
    server.workdir.mkdir()
    yield server.start()
    server.stop()


def held(alertmanager: AlertmanagerServer, fingerprint: str) -> list[dict]:
    """The alerts Alertmanager lists as not yet ended with our ``fingerprint`` label."""
    return [a for a in alertmanager.alerts() if a["labels"].get("fingerprint") == fingerprint]


LIVE_P0 = Rule(
    name="GeminiInvalidApiKey",
    priority=Priority.P0,
    source="check",
    expr="streak.gemini",
    for_seconds=0,
    clear_for_seconds=0,
    interval_seconds=0.5,
    error_code="GEMINI_INVALID_API_KEY",
    labels={"service": "gemini"},
    summary="Gemini rejects the API key",
    action_required="Check GEMINI_API_KEY in environment variables",
    runbook="https://runbooks.local/gemini-key",
)


# -- the live P0 through the real AlertingService ------------------------------------------------------------------
@pytest.mark.parametrize("resend, stays_active", [(RESEND, True), (None, False)])
def test_live_p0_stays_active_past_resolve_timeout_and_ends_when_resolved(
    short_alertmanager, monkeypatch, resend, stays_active
):
    """A P0 firing through the AlertingService for three resolve_timeouts stays listed in the real Alertmanager
    (re-posted every second) and leaves it once resolved; in the control nothing is re-posted, and Alertmanager
    ends the alert while it still fires: the refresh is what keeps it."""
    channel = {
        "type": "alertmanager",
        "url": short_alertmanager.url,
        "timeout_seconds": 2,
        "resend_interval_seconds": RESEND,
    }
    delivery = DeliveryConfig.model_validate({"channels": {"am": channel}, "routing": {"P0": ["am"]}})
    conditions = Conditions()
    if not resend:
        monkeypatch.setattr(alertmanager_refresh, "REFRESHED_PRIORITIES", frozenset())

    async def scenario() -> tuple[list[bool], bool]:
        outbox = Outbox()
        dispatcher = Dispatcher.from_config(outbox, delivery, build_notifiers(delivery, scrubber=SecretScrubber()))
        service = AlertingService([LIVE_P0], {"check": conditions}, outbox, dispatcher, delivery)
        await service.start()
        try:
            conditions.holding.add(LIVE_P0.name)
            listed_by = time.monotonic() + 60
            while not service.alerts() or not held(short_alertmanager, service.alerts()[0].fingerprint):
                assert time.monotonic() < listed_by, "the firing P0 never reached Alertmanager"
                await asyncio.sleep(0.1)
            fingerprint = service.alerts()[0].fingerprint
            listed = []
            for _ in range(3 * RESOLVE_TIMEOUT * 2):  # three resolve_timeouts, looked at every half second
                await asyncio.sleep(0.5)
                listed.append(bool(await asyncio.to_thread(held, short_alertmanager, fingerprint)))
            conditions.holding.clear()
            deadline = time.monotonic() + 10
            while await asyncio.to_thread(held, short_alertmanager, fingerprint) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            gone = not await asyncio.to_thread(held, short_alertmanager, fingerprint)
            return listed, gone
        finally:
            await service.stop()

    listed, gone = asyncio.run(scenario())
    if stays_active:
        assert all(listed), listed
    else:
        assert not listed[-1], listed  # ended by Alertmanager with the alert still firing
    assert gone


# -- labels and annotations, as the real Alertmanager holds them ---------------------------------------------------
@pytest.mark.parametrize(
    "priority, severity", [(Priority.P0, "critical"), (Priority.P1, "warning"), (Priority.P2, "info")]
)
@pytest.mark.parametrize(
    "runbook, runbook_url",
    [
        ("https://runbooks.local/gemini-key", "https://runbooks.local/gemini-key"),
        ("Rotate the key, then restart the workers.", None),
    ],
)
def test_alertmanager_holds_conventional_labels_and_annotations(alertmanager, priority, severity, runbook, runbook_url):
    """Alertmanager holds severity (critical/warning/info for P0/P1/P2), priority, alertname, service, error_code,
    and the annotations summary, description, runbook_url (only when the runbook is a link: prose goes to the
    description) besides action_required and runbook."""
    alert = make_alert(priority=priority, runbook=runbook, starts_at=utcnow() - dt.timedelta(minutes=1))
    notifier = AlertmanagerNotifier("am", alertmanager.url, scrubber=SecretScrubber())
    assert asyncio.run(notifier.notify(Notification.of(alert))).ok
    (got,) = held(alertmanager, alert.fingerprint)
    assert {key: got["labels"].get(key) for key in ("alertname", "severity", "priority", "service", "error_code")} == {
        "alertname": "ProviderInvalidKey",
        "severity": severity,
        "priority": priority.value,
        "service": "gemini",
        "error_code": "GEMINI_INVALID_API_KEY",
    }
    annotations = got["annotations"]
    assert annotations["summary"] == "API Key Invalid" and annotations["runbook"] == runbook
    assert annotations.get("runbook_url") == runbook_url
    assert "GEMINI_INVALID_API_KEY" in annotations["description"]
    assert "Check GEMINI_API_KEY" in annotations["description"]
    assert (runbook in annotations["description"]) is (runbook_url is None)
    assert got["status"]["state"] == "active"


# -- the refresher ---------------------------------------------------------------------------------------------------


def test_refresher_reposts_every_interval_with_ends_at_four_intervals_ahead(receiver):
    """Each channel is refreshed at once, then after each of its own intervals (injected sleep), with endsAt four
    intervals after the post; a receiver that is down is logged and the next refresh posts again."""
    clock, stop, slept = Clock(T0), asyncio.Event(), []
    alert = make_alert()
    fast = AlertmanagerNotifier(
        "fast", receiver.url, resend_interval_seconds=30, clock=clock, scrubber=SecretScrubber()
    )

    async def sleep(seconds: float, _stop: asyncio.Event) -> None:
        slept.append(seconds)
        clock.now += dt.timedelta(seconds=seconds)
        if len(slept) == 1:
            receiver.stop()  # the second refresh fails
        elif len(slept) == 2:
            receiver.start()
        else:
            stop.set()

    refresher = AlertmanagerRefresher(lambda: [alert], [RefreshedChannel(fast, {Priority.P0})], sleep=sleep)
    asyncio.run(refresher.run(stop))
    assert slept == [30, 30, 30]
    ends = [request["json"][0]["endsAt"] for request in receiver.requests]
    assert ends == ["2025-10-20T10:32:00Z", "2025-10-20T10:33:00Z"]  # posted at 10:30:00 and 10:31:00 (+120 s)


def test_failed_refresh_is_logged_and_retried(receiver, caplog):
    """A refresh refused (503) is logged as a warning naming the channel; the next one is posted and succeeds."""
    notifier = AlertmanagerNotifier("am-main", receiver.url, scrubber=SecretScrubber())
    channel = RefreshedChannel(notifier, {Priority.P0})
    refresher = AlertmanagerRefresher(lambda: [make_alert()], [channel])
    receiver.statuses.append(503)
    with caplog.at_level(logging.WARNING):
        first = asyncio.run(refresher.refresh(channel))
        second = asyncio.run(refresher.refresh(channel))
    assert (first, second) == (False, True) and len(receiver.requests) == 2
    (record,) = [r for r in caplog.records if "Alertmanager refresh failed" in r.getMessage()]
    assert (record.levelno, record.channel) == (logging.WARNING, "am-main") and "503" in record.reason


def test_refresh_racing_a_resolution_is_taken_back(alertmanager):
    """An alert that stops firing while its refresh is in flight is posted as ended right after: a refresh landing
    after its resolved notification does not leave it active in the real Alertmanager."""
    alert = make_alert(starts_at=utcnow() - dt.timedelta(minutes=1))
    answers = iter([[alert], []])  # firing when the refresh is built, resolved when it has been posted
    notifier = AlertmanagerNotifier("am", alertmanager.url, scrubber=SecretScrubber())
    channel = RefreshedChannel(notifier, {Priority.P0})
    assert asyncio.run(AlertmanagerRefresher(lambda: next(answers), [channel]).refresh(channel))
    assert held(alertmanager, alert.fingerprint) == []


@pytest.mark.parametrize(
    "routing, refreshed",
    [
        ({"P0": ["am"]}, {"p0"}),
        ({"P0": ["am"], "P2": ["am"]}, {"p0", "p2"}),
        ({"P1": ["am"]}, set()),  # P1 reaches channels as digests: its alerts were never posted one by one
        ({"P0": ["hook"]}, set()),
    ],
)
def test_refresher_posts_the_firing_alerts_of_the_priorities_routed_to_each_channel(receiver, routing, refreshed):
    """from_config refreshes, per alertmanager channel, the firing alerts of the priorities routed to it (not P1):
    pending ones and those held back by inhibition are not posted."""
    delivery = DeliveryConfig.model_validate(
        {
            "channels": {
                "am": {"type": "alertmanager", "url": receiver.url},
                "hook": {"type": "webhook", "url": f"{receiver.url}/hook"},
            },
            "routing": routing,
        }
    )
    alerts = [
        make_alert(fingerprint="p0", priority=Priority.P0),
        make_alert(fingerprint="p1", priority=Priority.P1),
        make_alert(fingerprint="p2", priority=Priority.P2),
        make_alert(AlertState.PENDING, fingerprint="p0-pending"),
    ]
    refresher = AlertmanagerRefresher.from_config(delivery, lambda: alerts, scrubber=SecretScrubber())
    for channel in refresher.channels:
        assert asyncio.run(refresher.refresh(channel))
    posted = {alert["labels"]["fingerprint"] for request in receiver.requests for alert in request["json"]}
    assert posted == refreshed


@pytest.mark.parametrize(
    "inhibitor_holds, kept",
    [
        (("ApiStreak (gemini)",), {"redis", "gemini-other"}),
        ((), {"redis", "gemini-streak", "gemini-other"}),
    ],
)
def test_announced_firing_leaves_out_inhibited_alerts(inhibitor_holds, kept):
    """A firing alert named in another firing alert's ``inhibited`` (as the evaluator sets it) is held back."""
    alerts = [
        make_alert(fingerprint="redis", rule="RedisDown", labels={"service": "redis"}, inhibited=inhibitor_holds),
        make_alert(fingerprint="gemini-streak", rule="ApiStreak"),
        make_alert(fingerprint="gemini-other", rule="GeminiInvalidApiKey"),
    ]
    assert {alert.fingerprint for alert in announced_firing(alerts)} == kept


# -- the webhook channel's alertmanager format ----------------------------------------------------------------------
def test_webhook_alertmanager_format_is_version_4(receiver):
    """``format: alertmanager`` posts Alertmanager's webhook payload: version 4, one group per alert keyed by its
    labels, with the alert's labels and annotations as the Alertmanager channel posts them."""
    delivery = DeliveryConfig.model_validate(
        {
            "channels": {
                "hook": {
                    "type": "webhook",
                    "url": f"{receiver.url}/am-format",
                    "format": "alertmanager",
                    "external_url": "http://monitor.local:8080",
                }
            }
        }
    )
    notifier = build_notifiers(delivery, scrubber=SecretScrubber())["hook"]
    firing, resolved = Notification.of(make_alert()), Notification.of(make_alert(AlertState.RESOLVED))
    assert asyncio.run(notifier.notify(firing)).ok and asyncio.run(notifier.notify(resolved)).ok
    first, second = (request["json"] for request in receiver.requests)
    assert (first["version"], first["status"], first["receiver"], first["truncatedAlerts"]) == (
        "4",
        "firing",
        "hook",
        0,
    )
    assert first["externalURL"] == "http://monitor.local:8080"
    (alert,) = first["alerts"]
    assert alert["labels"]["severity"] == "critical" and alert["annotations"]["runbook_url"]
    assert (alert["status"], alert["labels"]["fingerprint"], alert["endsAt"]) == (
        "firing",
        "a1b2c3d4e5f60718",
        "0001-01-01T00:00:00Z",
    )
    assert alert["fingerprint"] == "9303aa0b61b998a5"  # what Alertmanager 0.25 gives these labels
    assert first["groupLabels"] == first["commonLabels"] == alert["labels"]
    assert first["groupKey"].startswith('{}:{alertname="ProviderInvalidKey", error_code=')
    assert (second["status"], second["groupKey"]) == ("resolved", first["groupKey"])
    assert second["alerts"][0]["endsAt"] == "2025-10-20T10:37:15Z"
    assert receiver.requests[0]["headers"]["idempotency-key"] == firing.id


def test_webhook_alertmanager_format_of_a_p1_digest_lists_each_alert_once():
    """A P1 digest is one group: each alert of the hour once, in its latest transition; the group fires while one
    of them fires, and is keyed by the labels they share."""
    gemini = make_alert(fingerprint="gemini", priority=Priority.P1, rule="GeminiErrorRate")
    stability = make_alert(
        fingerprint="stability", priority=Priority.P1, rule="StabilityErrorRate", labels={"service": "stability"}
    )
    entries = [
        Notification.of(gemini),
        Notification.of(stability),
        Notification.of(gemini.with_state(AlertState.RESOLVED, ends_at=T0)),
    ]
    payload = alertmanager_webhook_payload(digest_notification(T0, entries), "hook")
    assert [(a["labels"]["alertname"], a["status"]) for a in payload["alerts"]] == [
        ("GeminiErrorRate", "resolved"),
        ("StabilityErrorRate", "firing"),
    ]
    assert payload["status"] == "firing"
    assert payload["commonLabels"] == {"severity": "warning", "priority": "P1", "error_code": "GEMINI_INVALID_API_KEY"}
    assert payload["groupKey"] == '{}:{error_code="GEMINI_INVALID_API_KEY", priority="P1", severity="warning"}'


def test_webhook_default_format_is_unchanged(receiver):
    """Without ``format`` the webhook posts our own version-1 payload."""
    notifier = WebhookNotifier("hook", f"{receiver.url}/hook", scrubber=SecretScrubber())
    assert asyncio.run(notifier.notify(Notification.of(make_alert()))).ok
    body = receiver.requests[0]["json"]
    assert (body["version"], set(body)) == ("1", {"version", "id", "status", "message", "alert"})


def _shape(payload: dict) -> dict:
    """The key sets of an Alertmanager webhook payload, its alerts' and their labels'."""
    (alert,) = payload["alerts"]
    return {
        "payload": set(payload),
        "alert": set(alert),
        "labels": set(alert["labels"]),
        "annotations": set(alert["annotations"]),
        "status": payload["status"],
    }


def test_webhook_alertmanager_format_equals_real_alertmanagers(tmp_path, receiver):
    """The same alert, firing then resolved, through a real Alertmanager's webhook and through our webhook with
    ``format: alertmanager``: the payloads have the same keys at every level, the same group key and labels."""
    server = AlertmanagerServer(tmp_path, webhook_url=f"{receiver.url}/from-alertmanager").start()
    try:
        alert = make_alert(starts_at=utcnow() - dt.timedelta(minutes=1))
        ours = WebhookNotifier("hook", f"{receiver.url}/ours", payload_format="alertmanager", scrubber=SecretScrubber())
        direct = AlertmanagerNotifier("am", server.url, scrubber=SecretScrubber())
        resolved = alert.with_state(AlertState.RESOLVED, ends_at=utcnow())
        for notification in (Notification.of(alert), Notification.of(resolved)):
            assert asyncio.run(direct.notify(notification)).ok and asyncio.run(ours.notify(notification)).ok
            status = notification.transition
            wait_until(
                lambda status=status: [
                    r for r in receiver.requests if r["path"] == "/from-alertmanager" and r["json"]["status"] == status
                ],
                15,
                what=f"Alertmanager's {status} webhook",
            )
    finally:
        server.stop()
    by_path: dict[str, list[dict]] = {}
    for request in receiver.requests:
        by_path.setdefault(request["path"], []).append(request["json"])
    theirs, mine = by_path["/from-alertmanager"], by_path["/ours"]
    assert [_shape(payload) for payload in theirs] == [_shape(payload) for payload in mine]
    for real, own in zip(theirs, mine, strict=False):
        assert own["groupKey"] == real["groupKey"]
        assert own["groupLabels"] == real["groupLabels"] and own["commonLabels"] == real["commonLabels"]
        assert own["commonAnnotations"] == real["commonAnnotations"]
        (own_alert,), (real_alert,) = own["alerts"], real["alerts"]
        for key in ("status", "labels", "annotations", "generatorURL", "fingerprint"):
            assert own_alert[key] == real_alert[key], key
        for key in ("startsAt", "endsAt") if own["status"] == "resolved" else ("startsAt",):
            assert dt.datetime.fromisoformat(own_alert[key]) == dt.datetime.fromisoformat(real_alert[key]), key
    assert theirs[0]["alerts"][0]["endsAt"] == mine[0]["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"


# -- config ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fixture, expected",
    [
        (
            "webhook_bad_format.yaml",
            "webhook_bad_format.yaml:7: alerting.delivery.channels.hook.webhook.format: Input should be 'otel-monitor' "
            "or 'alertmanager'",
        ),
        (
            "webhook_external_url_without_format.yaml",
            "webhook_external_url_without_format.yaml:7: alerting.delivery.channels.hook.webhook.external_url: "
            "Value error, only the alertmanager format has an external URL",
        ),
        (
            "alertmanager_resend_interval_too_short.yaml",
            "alertmanager_resend_interval_too_short.yaml:7: alerting.delivery.channels.am.alertmanager."
            "resend_interval_seconds: Input should be greater than or equal to 1",
        ),
        (
            "alertmanager_url_without_scheme.yaml",
            "alertmanager_url_without_scheme.yaml:6: alerting.delivery.channels.am.alertmanager.url: "
            "String should match",
        ),
    ],
)
def test_invalid_channel_options_name_file_line_and_key(fixture, expected):
    """Each invalid value of the new channel options is refused naming the file, the line and the key."""
    with pytest.raises(ConfigError) as caught:
        load_config_file(INVALID / fixture, MonitorConfig)
    assert expected in str(caught.value)


def test_channel_options_have_their_defaults():
    """Without the options: webhook format otel-monitor, no external URL, Alertmanager re-posted every 60 s."""
    delivery = DeliveryConfig.model_validate(
        {
            "channels": {
                "hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
                "am": {"type": "alertmanager", "url": "http://127.0.0.1:9093"},
            }
        }
    )
    hook, am = delivery.channels["hook"], delivery.channels["am"]
    assert (hook.format, hook.external_url, am.resend_interval_seconds) == ("otel-monitor", None, 60.0)
    assert build_notifiers(delivery, scrubber=SecretScrubber())["am"].valid_seconds == 240

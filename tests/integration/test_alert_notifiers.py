"""The receivers: payloads on a real local HTTP receiver and a real Alertmanager, status classification, config."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import time

import httpx
import pytest
from pydantic import ValidationError

from otel_monitor.logs.formatter import JsonLineFormatter
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.delivery.retry import classify_status
from otel_monitor.monitor.alerting.model import AlertState, Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers import (
    AlertmanagerNotifier,
    ConsoleNotifier,
    DiscordNotifier,
    LogFileNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    build_notifiers,
)
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.redaction.scrubber import SecretScrubber
from tests.support.alerts import STARTS, make_alert
from tests.support.receivers import Receiver

SLACK_TOKEN = "T000/B000/slacksecrettoken42"
DISCORD_TOKEN = "123456/discordsecrettoken42"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef"
FIRING = Notification.of(make_alert())
RESOLVED = Notification.of(make_alert(AlertState.RESOLVED))


def notifier_for(kind: str, base: str, scrubber: SecretScrubber):
    return {
        "webhook": lambda: WebhookNotifier("hook", f"{base}/hook", scrubber=scrubber),
        "slack": lambda: SlackNotifier("slack", f"{base}/services/{SLACK_TOKEN}", scrubber=scrubber),
        "discord": lambda: DiscordNotifier("discord", f"{base}/api/webhooks/{DISCORD_TOKEN}", scrubber=scrubber),
        "pagerduty": lambda: PagerDutyNotifier("pd", ROUTING_KEY, url=base, scrubber=scrubber),
        "alertmanager": lambda: AlertmanagerNotifier("am", base, scrubber=scrubber),
    }[kind]()


def deliver(notifier, notification: Notification):
    return asyncio.run(notifier.notify(notification))


@pytest.mark.parametrize(
    "status, ok, retryable",
    [
        (200, True, False),
        (202, True, False),
        (204, True, False),
        (429, False, True),
        (500, False, True),
        (502, False, True),
        (503, False, True),
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (404, False, False),
        (413, False, False),
        (301, False, False),
    ],
)
def test_classify_status(status, ok, retryable):
    """2xx is delivered, 429 and 5xx are retried, every other status is a permanent failure."""
    result = classify_status(status)
    assert (result.ok, result.retryable) == (ok, retryable)


def test_slack_payload_shape(receiver):
    """Slack gets exactly {text, blocks}: a header with the title, the fields, action + runbook, the trace link and
    the link to the trace's log lines."""
    assert deliver(notifier_for("slack", receiver.url, SecretScrubber()), FIRING).ok
    request = receiver.requests[0]
    assert request["path"] == f"/services/{SLACK_TOKEN}"
    body = request["json"]
    assert set(body) == {"text", "blocks"}
    assert "P0 Alert: API Key Invalid" in body["text"] and "GEMINI_INVALID_API_KEY" in body["text"]
    assert body["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "P0 Alert: API Key Invalid"}}
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert fields == ["*Priority*\nP0", "*Error code*\nGEMINI_INVALID_API_KEY", "*Service*\ngemini", "*Status*\nfiring"]
    assert "Check GEMINI_API_KEY" in body["blocks"][2]["text"]["text"]
    assert "runbooks.local/gemini-key" in body["blocks"][2]["text"]["text"]
    assert [element["text"] for element in body["blocks"][3]["elements"]] == [
        f"Trace: <{FIRING.alert.jaeger_url}|{FIRING.alert.trace_id}>",
        f"<{FIRING.alert.logs_url}|Logs>",
    ]


def test_discord_payload_shape(receiver):
    """Discord gets exactly {content, embeds}: one embed with title, colour, fields (the trace and its log lines)
    and the Jaeger URL."""
    assert deliver(notifier_for("discord", receiver.url, SecretScrubber()), FIRING).ok
    body = receiver.requests[0]["json"]
    assert set(body) == {"content", "embeds"}
    (embed,) = body["embeds"]
    assert set(embed) == {"title", "description", "color", "fields", "timestamp", "url"}
    assert embed["title"] == "P0 Alert: API Key Invalid" and embed["url"] == FIRING.alert.jaeger_url
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "Priority": "P0",
        "Error code": "GEMINI_INVALID_API_KEY",
        "Service": "gemini",
        "Action required": "Check GEMINI_API_KEY in environment variables",
        "Runbook": "https://runbooks.local/gemini-key",
        "Trace": f"[{FIRING.alert.trace_id}]({FIRING.alert.jaeger_url})",
        "Logs": f"[log lines]({FIRING.alert.logs_url})",
    }


def test_pagerduty_trigger_shape(receiver):
    """PagerDuty gets a v2 trigger on /v2/enqueue with dedup_key = fingerprint and severity critical for P0."""
    assert deliver(notifier_for("pagerduty", receiver.url, SecretScrubber()), FIRING).ok
    request = receiver.requests[0]
    assert request["path"] == "/v2/enqueue"
    body = request["json"]
    assert set(body) == {"routing_key", "event_action", "dedup_key", "payload", "links"}
    assert (body["routing_key"], body["event_action"], body["dedup_key"]) == (
        ROUTING_KEY,
        "trigger",
        "a1b2c3d4e5f60718",
    )
    payload = body["payload"]
    assert (payload["source"], payload["severity"], payload["component"]) == ("otel-monitor", "critical", "gemini")
    assert payload["summary"] == "P0 Alert: API Key Invalid (GEMINI_INVALID_API_KEY)"
    assert payload["custom_details"]["action_required"] == "Check GEMINI_API_KEY in environment variables"
    assert payload["custom_details"]["trace_id"] == FIRING.alert.trace_id
    assert body["links"] == [
        {"href": FIRING.alert.jaeger_url, "text": f"Jaeger trace {FIRING.alert.trace_id}"},
        {"href": FIRING.alert.logs_url, "text": f"Logs of trace {FIRING.alert.trace_id}"},
    ]


@pytest.mark.parametrize(
    "priority, severity", [(Priority.P0, "critical"), (Priority.P1, "warning"), (Priority.P2, "info")]
)
def test_pagerduty_severity(receiver, priority, severity):
    """Each priority maps to one PagerDuty severity."""
    deliver(notifier_for("pagerduty", receiver.url, SecretScrubber()), Notification.of(make_alert(priority=priority)))
    assert receiver.requests[0]["json"]["payload"]["severity"] == severity


def test_alertmanager_shape(receiver):
    """Alertmanager gets a list of one alert with our labels, annotations, startsAt, and while firing an endsAt
    four resend intervals (60 s) after the post."""
    posted_at = dt.datetime(2025, 10, 20, 10, 31, tzinfo=dt.UTC)
    notifier = AlertmanagerNotifier("am", receiver.url, scrubber=SecretScrubber(), clock=lambda: posted_at)
    assert deliver(notifier, FIRING).ok
    request = receiver.requests[0]
    assert request["path"] == "/api/v2/alerts"
    (posted,) = request["json"]
    assert posted["labels"] == {
        "alertname": "ProviderInvalidKey",
        "severity": "critical",
        "priority": "P0",
        "service": "gemini",
        "error_code": "GEMINI_INVALID_API_KEY",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    assert posted["annotations"] == {
        "summary": "API Key Invalid",
        "description": "API Key Invalid (GEMINI_INVALID_API_KEY, service gemini). "
        "Action required: Check GEMINI_API_KEY in environment variables.",
        "action_required": "Check GEMINI_API_KEY in environment variables",
        "runbook": "https://runbooks.local/gemini-key",
        "runbook_url": "https://runbooks.local/gemini-key",
        "trace_id": FIRING.alert.trace_id,
        "jaeger_url": FIRING.alert.jaeger_url,
        "logs_url": FIRING.alert.logs_url,
    }
    assert (posted["startsAt"], posted["endsAt"]) == ("2025-10-20T10:30:15Z", "2025-10-20T10:35:00Z")


@pytest.mark.parametrize(
    "kind, check",
    [
        (
            "pagerduty",
            lambda body: (
                body == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "a1b2c3d4e5f60718"}
            ),
        ),
        ("alertmanager", lambda body: body[0]["endsAt"] == "2025-10-20T10:37:15Z"),
        ("slack", lambda body: body["blocks"][0]["text"]["text"] == "P0 Resolved: API Key Invalid"),
        (
            "discord",
            lambda body: (
                body["embeds"][0]["title"] == "P0 Resolved: API Key Invalid" and body["embeds"][0]["color"] == 0x2EB67D
            ),
        ),
        ("webhook", lambda body: body["status"] == "resolved" and body["message"] == "P0 Resolved: API Key Invalid"),
    ],
)
def test_resolved_notifications(receiver, kind, check):
    """Each channel that can says the alert resolved: PagerDuty resolve, Alertmanager endsAt, a message elsewhere."""
    assert deliver(notifier_for(kind, receiver.url, SecretScrubber()), RESOLVED).ok
    assert check(receiver.requests[0]["json"])


def test_webhook_shape_and_idempotency_key(receiver):
    """The generic webhook posts the whole alert with Idempotency-Key = the notification id."""
    assert deliver(notifier_for("webhook", receiver.url, SecretScrubber()), FIRING).ok
    request = receiver.requests[0]
    assert request["headers"]["idempotency-key"] == FIRING.id
    body = request["json"]
    assert (body["id"], body["status"], body["version"]) == (FIRING.id, "firing", "1")
    alert = body["alert"]
    for key, value in {
        "priority": "P0",
        "error_code": "GEMINI_INVALID_API_KEY",
        "service": "gemini",
        "summary": "API Key Invalid",
        "action_required": "Check GEMINI_API_KEY in environment variables",
        "runbook": "https://runbooks.local/gemini-key",
        "trace_id": FIRING.alert.trace_id,
        "jaeger_url": FIRING.alert.jaeger_url,
        "logs_url": FIRING.alert.logs_url,
    }.items():
        assert alert[key] == value


@pytest.mark.parametrize("kind", ["webhook", "slack", "discord", "pagerduty", "alertmanager"])
@pytest.mark.parametrize("answer, retryable", [(500, True), (429, True), (400, False), ("down", True)])
def test_failures_classified_without_secrets(receiver, kind, answer, retryable):
    """Every HTTP channel reports 5xx/429/refused as retryable and 400 as permanent; no secret in the detail."""
    if answer == "down":
        receiver.stop()
    else:
        receiver.status = answer
    result = deliver(notifier_for(kind, receiver.url, SecretScrubber()), FIRING)
    assert (result.ok, result.retryable) == (False, retryable)
    for secret in (SLACK_TOKEN, DISCORD_TOKEN, ROUTING_KEY, "slacksecret", "discordsecret"):
        assert secret not in result.detail


def test_timeout_is_retryable():
    """A receiver that does not answer within the channel timeout gives a retryable failure."""
    hanging = Receiver().start()
    hanging.hang = True
    try:
        notifier = WebhookNotifier("hook", hanging.url, timeout=0.3, scrubber=SecretScrubber())
        started = time.monotonic()
        result = deliver(notifier, FIRING)
        assert (result.ok, result.retryable) == (False, True) and "timed out" in result.detail
        assert time.monotonic() - started < 3
    finally:
        hanging.stop()


@pytest.mark.parametrize(
    "priority, level, message",
    [
        (Priority.P0, "error", "P0 Alert: API Key Invalid"),
        (Priority.P1, "warning", "P1 Alert: API Key Invalid"),
        (Priority.P2, "warning", "P2 Alert: API Key Invalid"),
    ],
)
def test_log_file_lines(priority, level, message):
    """The log-file channel writes the required JSON shape at ERROR for P0 and WARNING for P1 and P2 alerts (the P2
    daily summary is INFO: see test_daily_summary)."""
    logger = logging.getLogger(f"test.alerts.{priority.value}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter(scrubber=SecretScrubber()))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        notification = Notification.of(make_alert(priority=priority))
        assert deliver(LogFileNotifier(logger=StructuredLogger(logger=logger)), notification).ok
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert (line["level"], line["message"], line["alert_priority"]) == (level, message, priority.value)
    assert line["error_code"] == "GEMINI_INVALID_API_KEY"
    assert line["details"]["service"] == "gemini"
    assert line["details"]["action_required"] == "Check GEMINI_API_KEY in environment variables"
    assert line["details"]["jaeger_url"] == FIRING.alert.jaeger_url
    assert line["details"]["logs_url"] == FIRING.alert.logs_url


def test_console_line():
    """The console channel writes one line with priority, state, error code, service, action, runbook, trace and
    the trace's log lines."""
    stream = io.StringIO()
    assert deliver(ConsoleNotifier(stream=stream, scrubber=SecretScrubber()), FIRING).ok
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert line.startswith("[P0 FIRING] GEMINI_INVALID_API_KEY service=gemini: API Key Invalid")
    assert "action: Check GEMINI_API_KEY" in line and FIRING.alert.jaeger_url in line
    assert f"| logs: {FIRING.alert.logs_url}" in line


def test_notification_id_and_round_trip():
    """The id depends on fingerprint, transition and start/end; the JSON form restores the same notification."""
    assert Notification.of(make_alert()).id == FIRING.id
    assert RESOLVED.id != FIRING.id
    assert Notification.of(make_alert(starts_at=STARTS + dt.timedelta(hours=1))).id != FIRING.id
    assert Notification.from_json(FIRING.to_json()) == FIRING
    assert Notification.from_json(RESOLVED.to_json()) == RESOLVED


VALID_CONFIG = {
    "channels": {
        "stderr": {"type": "console"},
        "logs": {"type": "log_file"},
        "hook": {
            "type": "webhook",
            "url": "http://127.0.0.1:1/hook",
            "headers": {"Authorization": "Bearer hooksecret"},
        },
        "slack": {"type": "slack", "url": f"https://hooks.slack.com/services/{SLACK_TOKEN}"},
        "discord": {"type": "discord", "url": f"https://discord.com/api/webhooks/{DISCORD_TOKEN}"},
        "pd": {"type": "pagerduty", "routing_key": ROUTING_KEY},
        "am": {"type": "alertmanager", "url": "http://127.0.0.1:9093", "timeout_seconds": 3},
    },
    "routing": {
        "P0": ["stderr", "logs", "hook", "slack", "discord", "pd", "am"],
        "P1": ["logs", "slack"],
        "P2": ["logs"],
    },
}


def _with(path: str, value) -> dict:
    config = json.loads(json.dumps(VALID_CONFIG))
    *parents, last = path.split(".")
    target = config
    for key in parents:
        target = target[key]
    target[last] = value
    return config


@pytest.mark.parametrize(
    "config, message",
    [
        (_with("routing.P0", ["stderr", "pagerduty"]), "routing.P0[1]: unknown channel 'pagerduty'"),
        (_with("routing.P2", ["nowhere"]), "routing.P2[0]: unknown channel 'nowhere'"),
        (_with("channels.slack.token", "x"), "channels.slack.slack.token"),
        (_with("channels.slack", {"type": "slack"}), "channels.slack.slack.url"),
        (_with("channels.pd", {"type": "pagerduty"}), "channels.pd.pagerduty.routing_key"),
        (_with("channels.x", {"type": "carrier-pigeon"}), "channels.x"),
        (_with("channels.am.timeout_seconds", 0), "channels.am.alertmanager.timeout_seconds"),
        (_with("routing.P3", ["logs"]), "routing.P3"),
        (_with("retries", {}), "retries"),
    ],
)
def test_invalid_config(config, message):
    """Each invalid delivery config is refused with an error naming the offending key."""
    with pytest.raises(ValidationError) as caught:
        DeliveryConfig.model_validate(config)
    assert message in str(caught.value).replace("\n  ", ".").replace("\n", ".")


def test_build_notifiers_maps_every_channel_and_hides_secrets():
    """build_notifiers gives one notifier per channel of the right type; secrets stay out of the config's repr."""
    config = DeliveryConfig.model_validate(VALID_CONFIG)
    notifiers = build_notifiers(config, scrubber=SecretScrubber())
    assert {name: type(n).__name__ for name, n in notifiers.items()} == {
        "stderr": "ConsoleNotifier",
        "logs": "LogFileNotifier",
        "hook": "WebhookNotifier",
        "slack": "SlackNotifier",
        "discord": "DiscordNotifier",
        "pd": "PagerDutyNotifier",
        "am": "AlertmanagerNotifier",
    }
    assert all(n.name == name for name, n in notifiers.items())
    text = repr(config) + str(config.model_dump())
    for secret in (SLACK_TOKEN, DISCORD_TOKEN, ROUTING_KEY, "hooksecret"):
        assert secret not in text
    assert config.channels_for(Priority.P1) == ("logs", "slack")


def test_build_notifiers_registers_secrets():
    """Every secret of the config is scrubbed from text once the notifiers are built."""
    scrubber = SecretScrubber()
    build_notifiers(DeliveryConfig.model_validate(VALID_CONFIG), scrubber=scrubber)
    text = f"posting to https://hooks.slack.com/services/{SLACK_TOKEN} with key {ROUTING_KEY} auth hooksecret"
    scrubbed = scrubber.scrub_text(text)
    for secret in (SLACK_TOKEN, ROUTING_KEY, "hooksecret"):
        assert secret not in scrubbed


def test_real_alertmanager_accepts_and_lists(alertmanager):
    """The real Alertmanager accepts our alerts and lists them with our labels; a resolved one stops being active."""
    firing_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    alert = make_alert(starts_at=firing_at)
    notifier = AlertmanagerNotifier("am", alertmanager.url, scrubber=SecretScrubber())
    assert deliver(notifier, Notification.of(alert)).ok
    listed = httpx.get(f"{alertmanager.url}/api/v2/alerts", timeout=5).json()
    (got,) = [a for a in listed if a["labels"].get("fingerprint") == alert.fingerprint]
    assert got["labels"] == {
        "alertname": "ProviderInvalidKey",
        "severity": "critical",
        "priority": "P0",
        "service": "gemini",
        "error_code": "GEMINI_INVALID_API_KEY",
        "fingerprint": alert.fingerprint,
    }
    assert got["annotations"]["action_required"] == "Check GEMINI_API_KEY in environment variables"
    assert got["annotations"]["jaeger_url"] == alert.jaeger_url
    assert got["annotations"]["logs_url"] == alert.logs_url
    assert got["status"]["state"] == "active"
    resolved = alert.with_state(AlertState.RESOLVED, ends_at=dt.datetime.now(dt.UTC))
    assert deliver(notifier, Notification.of(resolved)).ok
    active = httpx.get(
        f"{alertmanager.url}/api/v2/alerts",
        params={"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"},
        timeout=5,
    ).json()
    assert [a for a in active if a["labels"].get("fingerprint") == alert.fingerprint] == []


def test_real_alertmanager_rejects_bad_alert_permanently(alertmanager):
    """An alert Alertmanager refuses (400: no labels at all) is a permanent failure, not a retry."""
    result = asyncio.run(_post_raw(f"{alertmanager.url}/api/v2/alerts", [{"labels": {}}]))
    assert (result.ok, result.retryable) == (False, False)


async def _post_raw(url: str, payload):
    from otel_monitor.monitor.alerting.notifiers._http import post_json

    async with httpx.AsyncClient() as client:
        return await post_json(client, url, payload, timeout=5)

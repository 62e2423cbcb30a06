"""WebSocket push and Sentry: a real WebSocket client on the alerts router, a local Sentry envelope endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from otel_monitor.monitor.alerting.model import AlertState, Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers import (
    SentryNotifier,
    WebSocketHub,
    WebSocketNotifier,
    build_notifiers,
)
from otel_monitor.monitor.alerting.router import ALERTS_WS_PATH, build_alerts_router
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.redaction.scrubber import SecretScrubber
from tests.support.alerts import make_alert
from tests.support.receivers import SENTRY_KEY
from tests.support.receivers import SENTRY_PROJECT as PROJECT
from tools.devstack import free_port


def deliver(notifier, notification: Notification):
    return asyncio.run(notifier.notify(notification))


# -- WebSocket ----------------------------------------------------------------------------------------------------
def ws_app(hub: WebSocketHub) -> FastAPI:
    app = FastAPI()
    app.include_router(build_alerts_router(websocket_hub=hub))
    return app


def test_websocket_client_receives_p0_notification():
    """A client connected to /api/v1/alerts/ws receives a P0 notification's JSON with priority/error_code/summary."""
    hub = WebSocketHub()
    notifier = WebSocketNotifier("ws", hub)
    notification = Notification.of(make_alert())
    with TestClient(ws_app(hub)) as client, client.websocket_connect(ALERTS_WS_PATH) as ws:
        result = deliver(notifier, notification)
        message = ws.receive_json()
    assert result.ok and "1 connected client" in result.detail
    assert message["id"] == notification.id and message["transition"] == "firing"
    alert = message["alert"]
    assert (alert["priority"], alert["error_code"], alert["summary"]) == (
        "P0",
        "GEMINI_INVALID_API_KEY",
        "API Key Invalid",
    )
    assert Notification.from_json(json.dumps(message)) == notification


def test_websocket_every_client_gets_each_message_in_order_and_leaving_unsubscribes():
    """Two clients both get firing then resolved; once they disconnect the hub has no subscriber left."""
    hub = WebSocketHub()
    notifier = WebSocketNotifier("ws", hub)
    firing, resolved = Notification.of(make_alert()), Notification.of(make_alert(AlertState.RESOLVED))
    with TestClient(ws_app(hub)) as client:
        with client.websocket_connect(ALERTS_WS_PATH) as first, client.websocket_connect(ALERTS_WS_PATH) as second:
            assert deliver(notifier, firing).ok and deliver(notifier, resolved).ok
            for ws in (first, second):
                assert [ws.receive_json()["transition"], ws.receive_json()["transition"]] == ["firing", "resolved"]
        deadline = time.monotonic() + 5
        while hub.subscriber_count and time.monotonic() < deadline:
            time.sleep(0.02)
    assert hub.subscriber_count == 0


def test_websocket_serves_the_hub_of_the_apps_alerting_service():
    """Without a hub given, the endpoint serves ``app.state.alerting.websocket_hub`` (how create_app mounts it)."""
    hub = WebSocketHub()
    app = FastAPI()
    app.include_router(build_alerts_router())
    app.state.alerting = SimpleNamespace(websocket_hub=hub)
    with TestClient(app) as client, client.websocket_connect(ALERTS_WS_PATH) as ws:
        assert deliver(WebSocketNotifier("ws", hub), Notification.of(make_alert())).ok
        assert ws.receive_json()["alert"]["error_code"] == "GEMINI_INVALID_API_KEY"


def test_websocket_delivery_without_clients_succeeds_and_is_missed():
    """With nobody connected the notification is still delivered (handed to the hub); a later client misses it."""
    hub = WebSocketHub()
    result = deliver(WebSocketNotifier("ws", hub), Notification.of(make_alert()))
    assert result.ok and "0 connected client" in result.detail


def test_websocket_slow_client_keeps_the_latest_messages():
    """A client's backlog is bounded: the oldest messages are dropped, the publisher never blocks."""

    async def scenario():
        hub = WebSocketHub(backlog=2)
        with hub.subscribe() as queue:
            for text in ("a", "b", "c"):
                assert hub.publish(text) == 1
            await asyncio.sleep(0)
            return [queue.get_nowait() for _ in range(queue.qsize())]

    assert asyncio.run(scenario()) == ["b", "c"]


# -- Sentry -------------------------------------------------------------------------------------------------------
def test_sentry_event_arrives_with_fingerprint_level_tags_and_extras(sentry_endpoint):
    """One envelope per alert at /api/<project>/envelope/: fingerprint [alert fingerprint], tags, extras, level."""
    notifier = SentryNotifier("sentry", sentry_endpoint.dsn(), environment="staging", scrubber=SecretScrubber())
    notification = Notification.of(make_alert())
    result = deliver(notifier, notification)
    assert result.ok, result.detail
    [envelope] = sentry_endpoint.envelopes
    assert envelope["path"] == f"/api/{PROJECT}/envelope/"
    assert f"sentry_key={SENTRY_KEY}" in envelope["auth"]
    [(item_header, event)] = envelope["items"]
    assert item_header["type"] == "event"
    assert event["fingerprint"] == ["a1b2c3d4e5f60718"]
    assert event["event_id"] == notification.id == envelope["header"]["event_id"]
    assert event["level"] == "fatal" and event["environment"] == "staging"
    assert {key: event["tags"][key] for key in ("error_code", "service", "priority")} == {
        "error_code": "GEMINI_INVALID_API_KEY",
        "service": "gemini",
        "priority": "P0",
    }
    assert event["extra"]["action_required"] == "Check GEMINI_API_KEY in environment variables"
    assert event["extra"]["runbook"] == "https://runbooks.local/gemini-key"
    assert event["extra"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event["extra"]["jaeger_url"].endswith("/trace/4bf92f3577b34da6a3ce929d0e0e4736")
    assert event["extra"]["logs_url"] == notification.alert.logs_url


@pytest.mark.parametrize("priority, level", [(Priority.P0, "fatal"), (Priority.P1, "error"), (Priority.P2, "warning")])
def test_sentry_level_by_priority(sentry_endpoint, priority, level):
    """The event level follows the alert's priority."""
    notifier = SentryNotifier("sentry", sentry_endpoint.dsn(), scrubber=SecretScrubber())
    assert deliver(notifier, Notification.of(make_alert(priority=priority))).ok
    assert sentry_endpoint.envelopes[0]["items"][0][1]["level"] == level


def test_sentry_same_alert_twice_is_one_issue_and_resolved_is_not_sent(sentry_endpoint):
    """Two transitions of the same alert share the fingerprint (one Sentry issue); a resolved one is not sent."""
    notifier = SentryNotifier("sentry", sentry_endpoint.dsn(), scrubber=SecretScrubber())
    later = make_alert(starts_at=make_alert().starts_at.replace(hour=11))
    assert deliver(notifier, Notification.of(make_alert())).ok and deliver(notifier, Notification.of(later)).ok
    resolved = deliver(notifier, Notification.of(make_alert(AlertState.RESOLVED)))
    assert resolved.ok and "not sent" in resolved.detail
    fingerprints = [envelope["items"][0][1]["fingerprint"] for envelope in sentry_endpoint.envelopes]
    assert fingerprints == [["a1b2c3d4e5f60718"], ["a1b2c3d4e5f60718"]]


@pytest.mark.parametrize(
    "status, ok, retryable",
    [(200, True, False), (429, False, True), (503, False, True), (400, False, False), (403, False, False)],
)
def test_sentry_status_classification(sentry_endpoint, status, ok, retryable):
    """2xx delivered, 429/5xx retryable, other 4xx permanent; the echoed key never shows in the detail."""
    sentry_endpoint.status = status
    result = deliver(
        SentryNotifier("sentry", sentry_endpoint.dsn(), scrubber=SecretScrubber()), Notification.of(make_alert())
    )
    assert (result.ok, result.retryable) == (ok, retryable)
    assert SENTRY_KEY not in result.detail


def test_sentry_unreachable_is_retryable_and_never_shows_the_key(caplog):
    """Nothing listening: retryable, and the DSN key appears neither in the detail nor in any log record."""
    dsn = f"http://{SENTRY_KEY}@127.0.0.1:{free_port()}/{PROJECT}"
    with caplog.at_level(logging.DEBUG):
        notifier = SentryNotifier("sentry", dsn, scrubber=SecretScrubber(), timeout=2)
        result = deliver(notifier, Notification.of(make_alert()))
        notifier.close()
    assert not result.ok and result.retryable
    assert SENTRY_KEY not in result.detail
    assert SENTRY_KEY not in caplog.text


def test_sentry_client_is_not_the_global_one(sentry_endpoint):
    """Notifying binds no client to the global Sentry scope (the host application's own Sentry is untouched)."""
    import sentry_sdk

    before = sentry_sdk.get_client()
    assert deliver(
        SentryNotifier("sentry", sentry_endpoint.dsn(), scrubber=SecretScrubber()), Notification.of(make_alert())
    ).ok
    assert not before.is_active() and not sentry_sdk.get_client().is_active()


# -- config -------------------------------------------------------------------------------------------------------
CONFIG = {
    "channels": {
        "push": {"type": "websocket"},
        "sentry": {
            "type": "sentry",
            "dsn": f"https://{SENTRY_KEY}@sentry.example/{PROJECT}",
            "environment": "production",
        },
    },
    "routing": {"P0": ["push", "sentry"]},
}


def test_build_notifiers_websocket_and_sentry_hide_the_dsn():
    """Both channel types build their notifiers; the websocket one publishes to the hub given; the DSN is secret."""
    config = DeliveryConfig.model_validate(CONFIG)
    hub = WebSocketHub()
    scrubber = SecretScrubber()
    notifiers = build_notifiers(config, websocket_hub=hub, scrubber=scrubber)
    assert isinstance(notifiers["push"], WebSocketNotifier) and notifiers["push"].hub is hub
    assert isinstance(notifiers["sentry"], SentryNotifier)
    assert SENTRY_KEY not in repr(config) and SENTRY_KEY not in config.model_dump_json()
    assert SENTRY_KEY not in scrubber.scrub_text(f"failed for key {SENTRY_KEY}")


@pytest.mark.parametrize(
    "channel, message",
    [
        ({"type": "websocket", "url": "ws://x"}, "channels.c.websocket.url"),
        ({"type": "sentry"}, "channels.c.sentry.dsn"),
        ({"type": "sentry", "dsn": "ftp://k@h/1"}, "invalid Sentry DSN"),
        ({"type": "sentry", "dsn": f"https://{SENTRY_KEY}@h/notaproject"}, "invalid Sentry DSN"),
        ({"type": "sentry", "dsn": "https://h/1"}, "invalid Sentry DSN: Missing public key"),
        ({"type": "sentry", "dsn": f"https://{SENTRY_KEY}@h/1", "environment": ""}, "channels.c.sentry.environment"),
        ({"type": "sentry", "dsn": f"https://{SENTRY_KEY}@h/1", "tags": {}}, "channels.c.sentry.tags"),
    ],
)
def test_invalid_push_channel_config(channel, message):
    """Each invalid websocket or sentry channel is refused naming the key; the DSN key is never in the error."""
    with pytest.raises(ValidationError) as caught:
        DeliveryConfig.model_validate({"channels": {"c": channel}})
    text = str(caught.value).replace("\n  ", ".").replace("\n", ".")
    assert message in text
    assert SENTRY_KEY not in text

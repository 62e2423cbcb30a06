"""Acceptance, on a served monitor with a real local receiver and an injected clock: an unacknowledged P0 repeats
and escalates; after an acknowledgement it does neither; a stale acknowledgement re-notifies; notes show on the
incident's timeline."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from otel_monitor.monitor.alerting.acknowledgement import AcknowledgementStore
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.escalation import EscalationPolicy, EscalationStore
from otel_monitor.monitor.alerting.incidents import IncidentStore
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.notifiers import build_notifiers
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.service import AlertingService
from otel_monitor.monitor.alerting.state import AlertStore
from otel_monitor.monitor.app import create_app
from otel_monitor.monitor.config import MonitorConfig
from tests.support.alerts import Conditions, gemini_key_rule
from tests.support.clocks import RunningClock
from tests.support.receivers import Receiver
from tests.support.served_app import ServedApp
from tools.devstack import wait_until

T0 = dt.datetime(2025, 10, 20, 10, 30, tzinfo=dt.UTC)
PUBLIC_URL = "https://monitor.example"
KEY_INVALID = gemini_key_rule(interval_seconds=0.2)
ESCALATION = EscalationPolicy.model_validate(
    {
        "repeat_interval_seconds": 1800,
        "steps": [{"after_seconds": 900, "channels": ["pager"]}, {"after_seconds": 2700, "channels": ["team"]}],
    }
)
# How long the test watches for something that must not happen: many escalation checks (every 0.1 s).
QUIET_SECONDS = 1.5


def _served_monitor(receiver: Receiver, tmp_path, clock: RunningClock, conditions: Conditions):
    """The app with its alerting service on the test's clock and check source; P0 to ``ops``, escalated to
    ``pager`` then ``team`` (webhooks to the receiver's /ops, /pager, /team)."""
    delivery = DeliveryConfig.model_validate(
        {
            "channels": {
                name: {"type": "webhook", "url": f"{receiver.url}/{name}", "timeout_seconds": 2}
                for name in ("ops", "pager", "team")
            },
            "routing": {"P0": ["ops"]},
            "retry": {"initial_backoff_seconds": 0.2, "max_backoff_seconds": 1},
        }
    )
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    outbox = Outbox(url, clock=clock)
    alerting = AlertingService(
        [KEY_INVALID],
        {"check": conditions},
        outbox,
        Dispatcher.from_config(outbox, delivery, build_notifiers(delivery), clock=clock),
        delivery,
        clock=clock,
        state=AlertStore(url, clock=clock),
        incidents=IncidentStore(url, clock=clock),
        environment="production",
        acknowledgements=AcknowledgementStore(url, clock=clock),
        escalations=EscalationStore(url, clock=clock),
        escalation={Priority.P0: ESCALATION},
        public_url=PUBLIC_URL,
        escalation_check_seconds=0.1,
    )
    config = MonitorConfig.model_validate(
        {
            "environment": "production",
            "quota": {"store_url": f"sqlite:///{tmp_path / 'quota.db'}", "redis_url": None, "poll": False},
        }
    )
    return ServedApp(create_app(config, alerting=alerting))


def _received(receiver: Receiver, channel: str) -> list[str]:
    """The messages (titles) the receiver got on ``channel``'s path, in order."""
    return [r["json"]["message"] for r in receiver.requests if r["path"] == f"/{channel}"]


FIRING = "P0 Alert: Gemini rejects the API key"
RESOLVED = "P0 Resolved: Gemini rejects the API key"


def _repeat(n: int) -> str:
    return f"P0 Alert (repeat {n}): Gemini rejects the API key"


def _wait_for(receiver: Receiver, channel: str, expected: list[str]) -> None:
    wait_until(lambda: _received(receiver, channel) == expected, 30, what=f"{channel} to have {expected}")


@pytest.mark.timeout(180)
def test_unacknowledged_p0_repeats_and_escalates_and_an_ack_stops_both_until_it_goes_stale(receiver, tmp_path):
    """Fired: ops paged with an ack link; 900 s: pager; 1800 s: repeat 1. Acknowledged until 4000 s: at 3700 s
    (past the team step and the next repeat) nothing more; at 4000 s the stale ack re-notifies at once. Notes and
    every step show on the incident's timeline; resolved, ops and the escalated pager hear of it."""
    clock, conditions = RunningClock(T0), Conditions()
    with _served_monitor(receiver, tmp_path, clock, conditions) as base:
        conditions.holding.add(KEY_INVALID.name)
        _wait_for(receiver, "ops", [FIRING])
        (page,) = [r["json"] for r in receiver.requests]
        fingerprint = page["alert"]["fingerprint"]
        assert page["alert"]["ack_url"] == f"{PUBLIC_URL}/alerts/{fingerprint}"
        alert_page = httpx.get(f"{base}/alerts/{fingerprint}", timeout=10)  # where the link leads
        assert alert_page.status_code == 200 and "Gemini rejects the API key" in alert_page.text
        assert 'id="ack-form"' in alert_page.text and '<td id="acknowledged">no</td>' in alert_page.text

        clock.advance(900)
        _wait_for(receiver, "pager", [FIRING])
        clock.advance(900)
        _wait_for(receiver, "ops", [FIRING, _repeat(1)])

        ack_url = f"{base}/api/v1/alerts/{fingerprint}/ack"
        assert httpx.post(ack_url, json={"by": "alice"}, timeout=10).status_code == 200
        until = (T0 + dt.timedelta(seconds=4000)).isoformat()
        acked = httpx.post(ack_url, json={"by": "alice", "comment": "rotating the key", "until": until}, timeout=10)
        assert acked.status_code == 200
        assert acked.json()["by"] == "alice" and acked.json()["until"].startswith("2025-10-20T11:36:40")
        (listed,) = httpx.get(f"{base}/api/v1/alerts", timeout=10).json()["alerts"]
        assert listed["acknowledged"]["by"] == "alice"
        assert '<td id="acknowledged">by alice at ' in httpx.get(f"{base}/alerts/{fingerprint}", timeout=10).text

        clock.advance(1900)  # 3700 s: past the team step (2700 s) and repeat 2 (3600 s)
        time.sleep(QUIET_SECONDS)
        assert (_received(receiver, "ops"), _received(receiver, "pager"), _received(receiver, "team")) == (
            [FIRING, _repeat(1)],
            [FIRING],
            [],
        )

        clock.advance(300)  # 4000 s: the acknowledgement is stale
        _wait_for(receiver, "ops", [FIRING, _repeat(1), _repeat(2)])
        (listed,) = httpx.get(f"{base}/api/v1/alerts", timeout=10).json()["alerts"]
        assert listed["acknowledged"] is None

        (incident,) = httpx.get(f"{base}/api/v1/incidents", timeout=10).json()["incidents"]
        noted = httpx.post(
            f"{base}/api/v1/incidents/{incident['id']}/notes", json={"author": "bob", "text": "key rotated"}, timeout=10
        )
        assert noted.status_code == 201 and noted.json()["kind"] == "note"

        conditions.holding.clear()
        _wait_for(receiver, "pager", [FIRING, RESOLVED])
        _wait_for(receiver, "ops", [FIRING, _repeat(1), _repeat(2), RESOLVED])
        assert _received(receiver, "team") == []
        detail = wait_until(
            lambda: (
                body
                if (body := httpx.get(f"{base}/api/v1/incidents/{incident['id']}", timeout=10).json())["status"]
                == "resolved"
                else None
            ),
            30,
            what="the incident resolved",
        )

    assert [(e["kind"], e["author"]) for e in detail["timeline"]] == [
        ("opened", None),
        ("alert_firing", None),
        ("escalated", None),
        ("repeated", None),
        ("acknowledged", "alice"),
        ("acknowledged", "alice"),
        ("acknowledgement_expired", None),
        ("repeated", None),
        ("note", "bob"),
        ("alert_resolved", None),
        ("resolved", None),
    ]
    # The clock also runs with real time: the test's own seconds on top of the hours it skipped.
    assert 1800 <= detail["time_to_acknowledge_seconds"] < 1800 + 120
    assert 4000 <= detail["time_to_resolve_seconds"] < 4000 + 120


def test_an_unknown_alert_has_a_page_saying_so(receiver, tmp_path):
    """The page of a fingerprint no alert has: 404, in HTML like the pages it stands for, the fingerprint escaped."""
    with _served_monitor(receiver, tmp_path, RunningClock(T0), Conditions()) as base:
        response = httpx.get(f"{base}/alerts/%3Cb%3E00", timeout=10)
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    assert "No such alert" in response.text and "&lt;b&gt;00" in response.text


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("post", "/api/v1/alerts/0000000000000000/ack", {"by": "alice"}, 404),
        ("post", "/api/v1/alerts/0000000000000000/ack", {"comment": "who?"}, 422),
        ("post", "/api/v1/alerts/0000000000000000/ack", {"by": "alice", "until": "2025-10-20T12:00:00"}, 422),
        ("get", "/api/v1/incidents/999", None, 404),
        ("post", "/api/v1/incidents/999/notes", {"author": "bob", "text": "x"}, 404),
        ("post", "/api/v1/incidents/999/notes", {"author": "bob"}, 422),
        ("get", "/api/v1/incidents/first", None, 422),
    ],
)
def test_bad_requests_get_a_json_error(receiver, tmp_path, method, path, body, status):
    """Unknown alerts and incidents answer 404, bad bodies and ids 422, each with a JSON ``detail``."""
    with _served_monitor(receiver, tmp_path, RunningClock(T0), Conditions()) as base:
        response = httpx.request(method, base + path, json=body, timeout=10)
    assert response.status_code == status
    assert "detail" in response.json()

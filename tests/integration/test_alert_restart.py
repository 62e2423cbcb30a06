"""The served monitor across a restart: a firing P0 is not announced again, its incident closes, the heartbeat beats."""

from __future__ import annotations

import httpx
import pytest
from test_alerting_service import RULES, _alerts, _notifications

from examples.monitor_launcher import MonitorProcess
from tests.support.monitor import alerting_monitor
from tools.devstack import wait_until


def _incidents(url: str, **params) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/incidents", params=params, timeout=10)


def _beats(receiver) -> int:
    return sum(1 for r in receiver.requests if r["path"] == "/beat")


def _monitor(stack, own_redis, receiver, workdir) -> MonitorProcess:
    process = alerting_monitor(
        stack,
        workdir,
        RULES,
        {"ops-hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
        service_name="monitor-restart-under-test",
        health={"redis_url": own_redis.redis_url},
        heartbeat_url=f"{receiver.url}/beat",
        heartbeat_method="POST",
        heartbeat_interval_seconds=0.5,
    )
    process.config["environment"] = "production"
    return process


@pytest.mark.stack
def test_restart_while_firing_sends_no_second_firing_and_one_resolved(stack, own_redis, receiver, tmp_path):
    """Redis down, monitor restarted on the same store: no second firing; Redis back: one resolved, incident closed."""
    first = _monitor(stack, own_redis, receiver, tmp_path)
    with first:
        wait_until(
            lambda: (
                httpx.get(f"{first.url}/api/v1/system/health", timeout=10).json()["checks"]["redis"]["status"]
                == "healthy"
            ),
            30,
            what="Redis healthy",
        )
        own_redis.stop()
        (firing,) = wait_until(lambda: _notifications(receiver, "firing"), 30, what="the firing webhook")
        (incident,) = wait_until(
            lambda: _incidents(first.url, status="open").json()["incidents"], 30, what="the incident opened"
        )
        assert (incident["error_code"], incident["fingerprint"]) == (
            "REDIS_CONNECTION_FAILED",
            firing["alert"]["fingerprint"],
        )

    second = MonitorProcess(stack, tmp_path, service_name="monitor-restart-under-test")
    second.config = first.config  # same store file, same port-free config; a new process
    second.port = first.port
    with second:
        url = second.url
        listed = wait_until(lambda: _alerts(url, state="firing").json()["alerts"], 30, what="the restored alert")
        assert [a["fingerprint"] for a in listed] == [firing["alert"]["fingerprint"]]
        beats = _beats(receiver)
        wait_until(lambda: _beats(receiver) >= beats + 3, 30, what="heartbeats after the restart")
        # Several evaluations (1 s interval) have passed with Redis still down: still the one firing webhook.
        assert len(_notifications(receiver, "firing")) == 1

        own_redis.start("redis")
        (resolved,) = wait_until(lambda: _notifications(receiver, "resolved"), 30, what="the resolved webhook")
        assert resolved["alert"]["fingerprint"] == firing["alert"]["fingerprint"]
        (closed,) = wait_until(
            lambda: _incidents(url, status="resolved").json()["incidents"], 30, what="the incident resolved"
        )
        assert closed["id"] == incident["id"] and closed["closed_at"] is not None
        assert _incidents(url, status="open").json() == {"incidents": []}
        wait_until(
            lambda: [a["state"] for a in _alerts(url).json()["alerts"]] == ["resolved"],
            30,
            what="the alert listed as resolved",
        )
        assert len(_notifications(receiver, "firing")) == 1
        assert len(_notifications(receiver, "resolved")) == 1
        assert _incidents(url, status="ajar").status_code == 422


@pytest.mark.stack
def test_dead_heartbeat_watcher_does_not_stop_alerting(stack, own_redis, receiver, tmp_path):
    """With the heartbeat watcher down the monitor serves and alerts; when the watcher is back, pings arrive."""
    process = _monitor(stack, own_redis, receiver, tmp_path)
    process.config["environment"] = "development"
    watcher_port = receiver.port
    receiver.stop()
    with process:
        url = process.url
        assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
        own_redis.stop()
        receiver.start()  # the webhook and the watcher share the receiver: the firing is retried until it is up
        (firing,) = wait_until(lambda: _notifications(receiver, "firing"), 30, what="the firing webhook")
        assert receiver.port == watcher_port
        wait_until(lambda: _beats(receiver) >= 2, 30, what="heartbeats once the watcher is back")
        assert _incidents(url).json() == {"incidents": []}  # development: no incident
        assert _alerts(url, priority="P0").json()["alerts"][0]["fingerprint"] == firing["alert"]["fingerprint"]

"""The served alerting pipeline: a health rule fires and resolves once each through a webhook and the alerts API,
and the monitor's own alert and notification metrics reach Prometheus."""

from __future__ import annotations

import httpx
import pytest

from otel_monitor.monitor.alerting.metrics import AlertingPromNames
from tests.support.backends import wait_for_prom
from tests.support.monitor import alerting_monitor
from tests.support.receivers import Receiver
from tools.devstack import wait_until
from tools.devstack.rules import shipped_rule

RULES = {"rules": [shipped_rule("RedisDown", interval_seconds=1, clear_for_seconds=0)]}


# The monitor's ``otel_monitor_alerts`` series while the rule fires (the rule's alerts have no service label).
FIRING_SERIES = {("RedisDown", "P0", "", "firing"): 1.0}
ONE_DELIVERED = {("ops-hook", "delivered"): 1.0}


def _notifications(receiver: Receiver, status: str) -> list[dict]:
    return [r["json"] for r in receiver.requests if r["path"] == "/hook" and r["json"]["status"] == status]


def _alerts(url: str, **params) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/alerts", params=params, timeout=10)


_JOB = 'job="monitor-alerting-under-test"'
_ALERTS_BY_STATE = f"max by (rule, priority, service, state) ({AlertingPromNames.ALERTS}{{{_JOB}}})"
_NOTIFICATIONS = f"max by (channel, result) ({AlertingPromNames.NOTIFICATIONS}{{{_JOB}}})"
_ALERT_LABELS = ("rule", "priority", "service", "state")


@pytest.mark.stack
def test_redis_down_fires_once_and_resolves_once(stack, own_redis, receiver, tmp_path):
    """Redis stopped: one P0 firing webhook, a firing alert in the API and on the alerts gauge in Prometheus; Redis
    back: one resolved webhook, the gauge at 0; the deliveries counted by channel and result."""
    process = alerting_monitor(
        stack,
        tmp_path,
        RULES,
        {"ops-hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
        service_name="monitor-alerting-under-test",
        health={"redis_url": own_redis.redis_url},
    )
    with process:
        url = process.url
        wait_until(
            lambda: (
                httpx.get(f"{url}/api/v1/system/health", timeout=10).json()["checks"]["redis"]["status"] == "healthy"
            ),
            30,
            what="Redis healthy",
        )
        assert _alerts(url).json() == {"alerts": []}
        assert receiver.requests == []

        own_redis.stop()
        (firing,) = wait_until(lambda: _notifications(receiver, "firing"), 30, what="the firing webhook")
        assert firing["alert"]["error_code"] == "REDIS_CONNECTION_FAILED"
        assert firing["alert"]["priority"] == "P0"
        assert firing["alert"]["action_required"] == RULES["rules"][0]["action_required"]
        firing_in_prometheus = wait_for_prom(stack.prometheus_url, _ALERTS_BY_STATE, _ALERT_LABELS, FIRING_SERIES)
        assert firing_in_prometheus == FIRING_SERIES
        delivered = wait_for_prom(stack.prometheus_url, _NOTIFICATIONS, ("channel", "result"), ONE_DELIVERED)
        assert delivered == ONE_DELIVERED
        listed = wait_until(lambda: _alerts(url, priority="P0").json()["alerts"], 30, what="the alert listed")
        assert [(a["rule"], a["state"], a["error_code"]) for a in listed] == [
            ("RedisDown", "firing", "REDIS_CONNECTION_FAILED")
        ]
        assert _alerts(url, state="resolved").json() == {"alerts": []}

        own_redis.start("redis")
        (resolved,) = wait_until(lambda: _notifications(receiver, "resolved"), 30, what="the resolved webhook")
        assert resolved["alert"]["fingerprint"] == firing["alert"]["fingerprint"]
        wait_until(lambda: _alerts(url, state="firing").json() == {"alerts": []}, 30, what="the alert no longer firing")
        assert [(a["rule"], a["state"]) for a in _alerts(url).json()["alerts"]] == [("RedisDown", "resolved")]
        assert len(_notifications(receiver, "firing")) == 1
        assert len(receiver.requests) == 2
        ended = dict.fromkeys(FIRING_SERIES, 0.0)
        assert wait_for_prom(stack.prometheus_url, _ALERTS_BY_STATE, _ALERT_LABELS, ended) == ended
        two_delivered = {("ops-hook", "delivered"): 2.0}
        assert (
            wait_for_prom(stack.prometheus_url, _NOTIFICATIONS, ("channel", "result"), two_delivered) == two_delivered
        )

        rejected = _alerts(url, priority="P9")
        assert rejected.status_code == 422
        assert rejected.json()["detail"][0]["loc"] == ["query", "priority"]

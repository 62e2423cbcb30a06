"""P2 warnings reach people: a provider made slow by the fakes raises the shipped P2 latency rule in the served
monitor, which logs it at WARNING, delivers it to its P2 channel, and lists it in that day's summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import yaml

from examples.monitor_launcher import MonitorProcess
from otel_monitor.logs.files import read_log_records
from otel_monitor.monitor.alerting.delivery.daily_summary import DailySummary, DailySummaryConfig
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.monitor.alerting.state import AlertStore
from tests.support.demo import create_project, demo_backend, wait_finished
from tests.support.monitor import FAST_RETRY
from tools.devstack import wait_until

RULE = "GeminiLatencyP50High"
SLOW_SECONDS = 6.0  # above the rule's 5 s P50 warning threshold
CALLS = 14  # above the rule's minimum traffic of 10 calls in its window


def _p2_rule(job: str) -> dict:
    """The shipped rule, evaluated every 2 s and scoped to this test's backend (the session's Prometheus also holds
    other tests' Gemini calls); its threshold and guard are the shipped ones."""
    (rule,) = [r for r in load_rules("config/alert-rules.yaml", promtool=None) if r.name == RULE]
    scoped = rule.expr.replace('service="gemini"', f'service="gemini", job="{job}"')
    assert scoped != rule.expr
    return {**rule.model_dump(mode="json", exclude_defaults=True), "expr": scoped, "interval_seconds": 2}


@pytest.mark.stack
def test_slow_provider_p2_is_logged_delivered_and_summarised(stack, fakes, receiver, workdir):
    """Gemini answering in 6 s: the P2 latency warning is logged at WARNING in the required shape, reaches the P2
    webhook once, and the day's summary lists it under warnings with its worst P50."""
    demo = demo_backend(
        stack, fakes, workdir / "backend", f"p2slow{int(time.time())}", extra_env={"DEMO_REQUEST_TIMEOUT_SECONDS": "30"}
    )
    monitor = MonitorProcess(
        stack, workdir / "monitor", service_name="monitor-p2-under-test", health={"cache_ttl_seconds": 1}
    )
    rules_file = monitor.workdir / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"rules": [_p2_rule(demo.worker_service)]}, sort_keys=False))
    monitor.config["alerting"] = {
        "enabled": True,
        "rules_file": str(rules_file),
        "prometheus_url": stack.prometheus_url,
        "jaeger_url": stack.jaeger_url,
        "delivery": {
            "channels": {"hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
            "routing": {"P0": ["hook"], "P1": ["hook"], "P2": ["hook"]},
            "retry": FAST_RETRY,
        },
    }
    with demo, monitor:
        fakes.set_fault("gemini", mode="ok", latencies=[SLOW_SECONDS])
        ids = {create_project(demo, ["gemini"])["project_id"] for _ in range(CALLS)}
        wait_finished(demo, ids, timeout=CALLS * SLOW_SECONDS + 60)

        def delivered():
            return [
                r["json"]
                for r in receiver.requests
                if r["path"] == "/hook" and r["json"]["alert"]["rule"] == RULE and r["json"]["status"] == "firing"
            ]

        (notification,) = wait_until(delivered, 120, what="the P2 warning at the webhook")
        assert notification["alert"]["priority"] == "P2"
        assert notification["alert"]["error_code"] == "API_LATENCY_HIGH"
        assert notification["alert"]["value"] > 5

        def logged():
            return [
                line
                for line in read_log_records(monitor.workdir / "logs")
                if line["message"].startswith("P2 Alert:") and line.get("error_code") == "API_LATENCY_HIGH"
            ]

        (line,) = wait_until(logged, 30, what="the P2 warning in the monitor's log")
        assert line["level"] == "warning" and line["alert_priority"] == "P2"
        assert line["details"]["service"] == "gemini" and line["details"]["action_required"]

        store = AlertStore(monitor.config["quota"]["store_url"])
        try:

            async def episodes(start, end):
                return store.episodes_between(start, end)

            summary = DailySummary(
                DailySummaryConfig(prometheus_url=stack.prometheus_url, reports_dir=workdir / "reports"),
                episodes=episodes,
                rules=load_rules("config/alert-rules.yaml", promtool=None),
            )
            report = asyncio.run(summary.build(dt.datetime.now(dt.UTC).date()))
        finally:
            store.close()
        (warning,) = [w for w in report["warnings"] if w["rule"] == RULE]
        assert warning["service"] == "gemini" and warning["error_code"] == "API_LATENCY_HIGH"
        assert warning["times_fired"] == 1 and warning["still_firing"] is True
        assert warning["worst_value"] >= notification["alert"]["value"] > 5
        assert len(delivered()) == 1

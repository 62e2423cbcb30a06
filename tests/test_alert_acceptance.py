"""Acceptance of issue 4's P0 alerts: the shipped rules, one served monitor, three channels (webhook, Slack,
PagerDuty), P0 conditions induced one by one in the demo stack: one notification per channel each, one resolved."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from examples.monitor_launcher import MonitorProcess
from otel_monitor.devstack import wait_until
from otel_monitor.devstack.stack import REPO_ROOT

from test_alerting_service import own_redis, receiver  # noqa: F401 (fixtures)
from test_pipeline_e2e import create_project, demo  # noqa: F401 (fixture)

SHIPPED_RULES = REPO_ROOT / "config" / "alert-rules.yaml"
ROUTING_KEY = "acceptance-routing-key-0123456789"
CHANNELS = ("hook", "slack", "pd")


def _shipped_rules_for_speed() -> dict:
    """The shipped rules, P0 ones evaluated every second and resolved after 2 s clear; thresholds untouched."""
    rules = yaml.safe_load(SHIPPED_RULES.read_text())
    for rule in rules["rules"]:
        if rule["priority"] == "P0":
            rule["interval_seconds"] = 1
            rule["clear_for_seconds"] = min(rule["clear_for_seconds"], 2)
    return rules


def _hook(receiver, status: str, code: str) -> list[dict]:
    return [r["json"] for r in receiver.requests if r["path"] == "/hook"
            and r["json"]["status"] == status and r["json"]["alert"]["error_code"] == code]


def _slack(receiver, status: str, code: str) -> list[dict]:
    emoji = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}[status]
    return [r["json"] for r in receiver.requests if r["path"] == "/slack"
            and r["json"]["text"].startswith(emoji) and f"({code})" in r["json"]["text"]]


def _pd(receiver, action: str, dedup_key: str) -> list[dict]:
    return [r["json"] for r in receiver.requests if r["path"].startswith("/pd/")
            and r["json"]["event_action"] == action and r["json"]["dedup_key"] == dedup_key]


def _all_three(receiver, status: str, code: str, fingerprint: str | None = None):
    """(webhook, slack, pagerduty) notifications of this transition, once each channel has at least one."""
    hooks = _hook(receiver, status, code)
    if not hooks:
        return None
    key = fingerprint or hooks[0]["alert"]["fingerprint"]
    found = (hooks, _slack(receiver, status, code), _pd(receiver, "trigger" if status == "firing" else "resolve", key))
    return found if all(found) else None


def _fired(receiver, code: str, timeout: float = 60) -> dict:
    hooks, slacks, pds = wait_until(lambda: _all_three(receiver, "firing", code), timeout,
                                    interval=0.25, what=f"{code} firing on the three channels")
    assert (len(hooks), len(slacks), len(pds)) == (1, 1, 1), (code, hooks, slacks, pds)
    (hook,), (pd,) = hooks, pds
    assert hook["alert"]["priority"] == "P0"
    assert pd["payload"]["custom_details"]["error_code"] == code
    assert pd["payload"]["severity"] == "critical"
    assert pd["routing_key"] == ROUTING_KEY
    assert pd["dedup_key"] == hook["alert"]["fingerprint"]
    return hook


def _resolved(receiver, code: str, firing: dict, timeout: float = 60) -> None:
    fingerprint = firing["alert"]["fingerprint"]
    hooks, slacks, pds = wait_until(lambda: _all_three(receiver, "resolved", code, fingerprint), timeout,
                                    interval=0.25, what=f"{code} resolved on the three channels")
    assert (len(hooks), len(slacks), len(pds)) == (1, 1, 1), (code, hooks, slacks, pds)
    assert hooks[0]["alert"]["fingerprint"] == fingerprint


def _health(url: str) -> dict:
    return httpx.get(f"{url}/api/v1/system/health", timeout=10).json()["checks"]


@pytest.mark.stack
def test_p0_conditions_notify_every_channel_once_and_resolve_once(stack, fakes, demo, own_redis, receiver,  # noqa: F811
                                                                   tmp_path):
    ffmpeg = tmp_path / "bin" / "ffmpeg"
    ffmpeg.parent.mkdir()
    shutil.copy2(Path("/usr/bin/ffmpeg").resolve(), ffmpeg)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_shipped_rules_for_speed(), sort_keys=False))
    process = MonitorProcess(stack, tmp_path / "monitor", service_name="monitor-acceptance-under-test",
                             health={"redis_url": own_redis.redis_url, "celery_broker_url": stack.redis_url,
                                     "ffmpeg_binary": str(ffmpeg), "cache_ttl_seconds": 1,
                                     "check_timeout_seconds": 2})
    process.config["alerting"] = {
        "enabled": True, "rules_file": str(tmp_path / "rules.yaml"), "prometheus_url": stack.prometheus_url,
        "jaeger_url": stack.jaeger_url,
        "delivery": {
            "channels": {
                "ops-hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2},
                "ops-slack": {"type": "slack", "url": f"{receiver.url}/slack", "timeout_seconds": 2},
                "ops-pagerduty": {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": f"{receiver.url}/pd",
                                  "timeout_seconds": 2},
            },
            "routing": {"P0": ["ops-hook", "ops-slack", "ops-pagerduty"]},
            "retry": {"initial_backoff_seconds": 0.2, "max_backoff_seconds": 1},
        },
    }
    try:
        with process:
            url = process.url
            wait_until(lambda: all(_health(url)[name]["status"] == "healthy"
                                   for name in ("database", "redis", "celery", "ffmpeg")), 60,
                       what="the checks healthy")

            # (a) Gemini switched to an invalid key; one project calls it.
            fakes.set_fault("gemini", mode="invalid_key")
            create_project(demo, ["gemini"])
            gemini = _fired(receiver, "GEMINI_INVALID_API_KEY", timeout=60)
            assert gemini["alert"]["labels"]["service"] == "gemini"
            assert len(gemini["alert"]["trace_id"]) == 32
            assert gemini["alert"]["jaeger_url"] == f"{stack.jaeger_url}/trace/{gemini['alert']['trace_id']}"
            fakes.set_fault("gemini", mode="ok", latencies=[0])

            # (b) Redis stopped, then started.
            own_redis.stop()
            redis_down = _fired(receiver, "REDIS_CONNECTION_FAILED")
            own_redis.start("redis")
            _resolved(receiver, "REDIS_CONNECTION_FAILED", redis_down)

            # (c) ffmpeg removed, then restored.
            ffmpeg.unlink()
            ffmpeg_missing = _fired(receiver, "FFMPEG_NOT_FOUND")
            shutil.copy2(Path("/usr/bin/ffmpeg").resolve(), ffmpeg)
            _resolved(receiver, "FFMPEG_NOT_FOUND", ffmpeg_missing)

            # (d) the demo's Celery worker stopped, then started again.
            demo.processes.pop("worker").stop(timeout=30)
            worker_down = _fired(receiver, "CELERY_WORKER_DOWN")
            demo.processes["worker"] = demo.worker().start()
            _resolved(receiver, "CELERY_WORKER_DOWN", worker_down)

            # Nothing else was sent, and nothing twice (the checks went on being evaluated every second).
            wait_until(lambda: _health(url)["celery"]["status"] == "healthy", 30, what="celery healthy again")
            induced = {"GEMINI_INVALID_API_KEY", "REDIS_CONNECTION_FAILED", "FFMPEG_NOT_FOUND", "CELERY_WORKER_DOWN"}
            hooks = [r["json"] for r in receiver.requests if r["path"] == "/hook"]
            assert {h["alert"]["error_code"] for h in hooks} == induced
            for code in induced:
                assert len(_hook(receiver, "firing", code)) == 1
                assert len(_slack(receiver, "firing", code)) == 1
                resolved = 0 if code == "GEMINI_INVALID_API_KEY" else 1  # its [5m] window outlasts the test
                assert len(_hook(receiver, "resolved", code)) == resolved
                assert len(_slack(receiver, "resolved", code)) == resolved
            assert sum(1 for r in receiver.requests if r["path"].startswith("/pd/")) == 4 + 3
            assert sum(1 for r in receiver.requests if r["path"] == "/slack") == 4 + 3
            assert len(hooks) == 4 + 3
    finally:
        fakes.set_fault("gemini", mode="ok", latencies=[0])

"""Acceptance of issue 4 on a stack of its own (collector, Jaeger, Prometheus, PostgreSQL, Redis), the demo
backend and one served monitor with the shipped rules:

- every P0 condition induced for real gives exactly one notification on each of the nine channels and, once
  cleared, one resolved notification where the channel has one;
- a webhook receiver down for a while, the monitor SIGKILLed mid-delivery and restarted, and Prometheus stopped:
  every notification arrives once, and MONITORING_BACKEND_DOWN goes out while Prometheus is away.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from websockets.sync.client import connect

from examples.monitor_launcher import MonitorProcess
from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.instrument.failure_streaks import DEFAULT_PEAK_TTL_SECONDS, RedisFailureStreaks
from otel_monitor.instrument.metrics import PromNames
from otel_monitor.logs.files import read_log_records
from otel_monitor.monitor.alerting.links import logs_link
from tests.support.backends import prom_values
from tests.support.demo import create_project, demo_backend, wait_finished
from tests.support.monitor import alerting_monitor
from tests.support.stacks import private_stack, server_workdir
from tools.devstack import DevStack, wait_until
from tools.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.stack

SHIPPED_RULES = REPO_ROOT / "config" / "alert-rules.yaml"
ROUTING_KEY = "acceptance-routing-key-0123456789"
EMAIL_TO = "oncall@example.org"
STREAK_CODE = "API_CONSECUTIVE_FAILURES"


# -- the stack, the demo backend and the monitor of this module -------------------------------------------------
@pytest.fixture(scope="module")
def own_stack():
    """A stack of this module alone: its Prometheus holds only this module's series and can be stopped."""
    with private_stack("otel-monitor-acceptance-") as dev:
        yield dev


@pytest.fixture(scope="module")
def own_demo(own_stack, fakes):
    workdir = server_workdir("otel-monitor-acceptance-demo-")
    backend = demo_backend(own_stack, fakes, workdir, "acceptance").start()
    yield backend
    backend.stop()
    for service in ("gemini", "stability"):
        fakes.set_fault(service, mode="ok", latencies=[0])
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def small_disk():
    """A real 8 MiB file system (tmpfs) for the disk check, so the test can fill it past the threshold."""
    if os.geteuid() != 0:
        pytest.fail("mounting the test's tmpfs needs root (the CI machine runs the tests as root)")
    path = server_workdir("otel-monitor-disk-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def shipped_rules_for_speed(names: set[str] | None = None) -> dict:
    """The shipped rules (``names`` only, when given), P0 ones evaluated every second and resolved after 2 s clear;
    thresholds and expressions untouched."""
    rules = yaml.safe_load(SHIPPED_RULES.read_text())
    rules["thresholds"] = str(SHIPPED_RULES.parent / rules["thresholds"])  # the copy is written elsewhere
    if names is not None:
        rules["rules"] = [rule for rule in rules["rules"] if rule["name"] in names]
        for rule in rules["rules"]:
            rule["inhibited_by"] = [name for name in rule.get("inhibited_by", ()) if name in names]
    for rule in rules["rules"]:
        if rule["priority"] == "P0":
            rule["interval_seconds"] = 1
            rule["clear_for_seconds"] = min(rule["clear_for_seconds"], 2)
    return rules


def served_monitor(stack: DevStack, workdir: Path, rules: dict, channels: dict, health: dict) -> MonitorProcess:
    return alerting_monitor(
        stack,
        workdir / "monitor",
        rules,
        channels,
        service_name="monitor-acceptance-under-test",
        health={"check_timeout_seconds": 2, **health},
    )


def _health(url: str) -> dict:
    return httpx.get(f"{url}/api/v1/system/health", timeout=10).json()["checks"]


# -- what each channel got -------------------------------------------------------------------------------------
class WebSocketListener:
    """A client of the monitor's ``/api/v1/alerts/ws``, keeping every message in a thread of its own."""

    def __init__(self, url: str) -> None:
        self.messages: list[dict] = []
        self._url = url.replace("http://", "ws://") + "/api/v1/alerts/ws"
        self._connected = threading.Event()
        self._socket = None
        threading.Thread(target=self._listen, daemon=True).start()
        if not self._connected.wait(10):
            raise TimeoutError(f"no WebSocket connection to {self._url}")

    def _listen(self) -> None:
        try:
            with connect(self._url, open_timeout=10) as socket:
                self._socket = socket
                self._connected.set()
                for message in socket:
                    self.messages.append(json.loads(message))
        except Exception:  # closed with the monitor
            pass

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


class Channels:
    """The nine P0 channels of the acceptance run and, per channel, the notifications of one transition."""

    def __init__(self, receiver, smtp_inbox, alertmanager, sentry_endpoint) -> None:
        self.receiver, self.smtp, self.alertmanager, self.sentry = receiver, smtp_inbox, alertmanager, sentry_endpoint
        self.monitor: MonitorProcess | None = None
        self.websocket: WebSocketListener | None = None

    def config(self) -> dict:
        url = self.receiver.url
        return {
            "ops-console": {"type": "console"},
            "ops-log": {"type": "log_file"},
            "ops-websocket": {"type": "websocket"},
            "ops-hook": {"type": "webhook", "url": f"{url}/hook", "timeout_seconds": 2},
            "ops-slack": {"type": "slack", "url": f"{url}/slack", "timeout_seconds": 2},
            "ops-pagerduty": {
                "type": "pagerduty",
                "routing_key": ROUTING_KEY,
                "url": f"{url}/pd",
                "timeout_seconds": 2,
            },
            "ops-email": {
                "type": "email",
                "host": "127.0.0.1",
                "port": self.smtp.port,
                "sender": "otel-monitor@example.org",
                "recipients": [EMAIL_TO],
                "timeout_seconds": 5,
            },
            "ops-alertmanager": {"type": "alertmanager", "url": self.alertmanager.url, "timeout_seconds": 2},
            "ops-sentry": {"type": "sentry", "dsn": self.sentry.dsn(), "timeout_seconds": 2},
        }

    def watch(self, monitor: MonitorProcess) -> None:
        self.monitor = monitor
        self.websocket = WebSocketListener(monitor.url)

    def firing(self, code: str) -> dict[str, list]:
        """Every channel's firing notifications of ``code`` (Alertmanager: its active alerts of that code)."""
        r = self.receiver.requests
        return {
            "webhook": [
                x["json"]
                for x in r
                if x["path"] == "/hook" and x["json"]["status"] == "firing" and x["json"]["alert"]["error_code"] == code
            ],
            "slack": [
                x["json"]
                for x in r
                if x["path"] == "/slack"
                and x["json"]["text"].startswith(":rotating_light:")
                and f"({code})" in x["json"]["text"]
            ],
            "pagerduty": [
                x["json"]
                for x in r
                if x["path"].startswith("/pd")
                and x["json"]["event_action"] == "trigger"
                and x["json"]["payload"]["custom_details"]["error_code"] == code
            ],
            "email": [
                m
                for m in self.smtp.messages
                if str(m["Subject"]).startswith("[P0] P0 Alert:") and str(m["Subject"]).endswith(f"({code})")
            ],
            "alertmanager": [
                a for a in self.alertmanager.alerts(active="true") if a["labels"].get("error_code") == code
            ],
            "sentry": [e for e in self.sentry.events() if e.get("tags", {}).get("error_code") == code],
            "log_file": self._log_lines("firing", code),
            "console": self._console_lines("FIRING", code),
            "websocket": [
                m for m in self.websocket.messages if m["transition"] == "firing" and m["alert"]["error_code"] == code
            ],
        }

    def resolved(self, code: str, fingerprint: str) -> dict[str, list]:
        """Every channel's resolved notifications of the alert ``fingerprint`` (Alertmanager: still active ones;
        Sentry sends none: issues are resolved in Sentry)."""
        r = self.receiver.requests
        return {
            "webhook": [
                x["json"]
                for x in r
                if x["path"] == "/hook"
                and x["json"]["status"] == "resolved"
                and x["json"]["alert"]["fingerprint"] == fingerprint
            ],
            "slack": [
                x["json"]
                for x in r
                if x["path"] == "/slack"
                and x["json"]["text"].startswith(":white_check_mark:")
                and f"({code})" in x["json"]["text"]
            ],
            "pagerduty": [
                x["json"]
                for x in r
                if x["path"].startswith("/pd")
                and x["json"]["event_action"] == "resolve"
                and x["json"]["dedup_key"] == fingerprint
            ],
            "email": [
                m
                for m in self.smtp.messages
                if str(m["Subject"]).startswith("[P0] P0 Resolved:") and str(m["Subject"]).endswith(f"({code})")
            ],
            "log_file": self._log_lines("resolved", code),
            "console": self._console_lines("RESOLVED", code),
            "websocket": [
                m
                for m in self.websocket.messages
                if m["transition"] == "resolved" and m["alert"]["fingerprint"] == fingerprint
            ],
        }

    def _log_lines(self, transition: str, code: str) -> list[dict]:
        # P0 lines only: the P1 streak rule shares the error code, and its transitions are logged as they happen.
        return [
            line
            for line in read_log_records(self.monitor.workdir / "logs")
            if line.get("logger") == "otel_monitor.alerts"
            and line.get("error_code") == code
            and line.get("alert_state") == transition
            and line.get("alert_priority") == "P0"
        ]

    def _console_lines(self, transition: str, code: str) -> list[str]:
        output = (self.monitor.workdir / "monitor.out").read_text(errors="replace")
        return [line for line in output.splitlines() if line.startswith(f"[P0 {transition}] {code} ")]

    def close(self) -> None:
        if self.websocket is not None:
            self.websocket.close()


def _once_everywhere(collect: Callable[[], dict[str, list]], what: str, timeout: float = 60) -> dict[str, list]:
    """Waits until every channel has the notification; none may have it twice."""
    got = wait_until(lambda: (found := collect()) and all(found.values()) and found, timeout, interval=0.25, what=what)
    assert {channel: len(items) for channel, items in got.items()} == dict.fromkeys(got, 1), what
    return got


def fired(channels: Channels, code: str, service: str | None = None, timeout: float = 60) -> dict:
    """One firing notification of ``code`` on each of the nine channels; returns the webhook's."""
    got = _once_everywhere(lambda: channels.firing(code), f"{code} firing on every channel", timeout)
    (hook,), (pd,), (am,), (event,) = got["webhook"], got["pagerduty"], got["alertmanager"], got["sentry"]
    alert = hook["alert"]
    assert (alert["priority"], alert["error_code"]) == ("P0", code)
    assert alert["action_required"] and alert["runbook"]
    assert (pd["routing_key"], pd["dedup_key"], pd["payload"]["severity"]) == (
        ROUTING_KEY,
        alert["fingerprint"],
        "critical",
    )
    assert am["labels"]["fingerprint"] == alert["fingerprint"]
    assert event["fingerprint"] == [alert["fingerprint"]] and event["level"] == "fatal"
    (log_line,) = got["log_file"]
    assert (log_line["level"], log_line["alert_priority"]) == ("error", "P0")
    assert got["email"][0]["To"] == EMAIL_TO
    if service is not None:
        assert alert["labels"]["service"] == service
    return hook


def resolved(channels: Channels, code: str, firing: dict, timeout: float = 60) -> None:
    """One resolved notification on each channel that has them; Alertmanager no longer lists it active."""
    fingerprint = firing["alert"]["fingerprint"]
    _once_everywhere(lambda: channels.resolved(code, fingerprint), f"{code} resolved on every channel", timeout)
    wait_until(lambda: not channels.firing(code)["alertmanager"], 30, what=f"{code} inactive in Alertmanager")
    assert len(channels.firing(code)["sentry"]) == 1  # the issue stays one issue; Sentry resolves it itself


def assert_api_alert(firing: dict, stack: DevStack, trace_ids: set[str]) -> None:
    """An alert from failing calls carries the trace_id of one of them, its Jaeger link and its logs link."""
    alert = firing["alert"]
    assert alert["trace_id"] in trace_ids
    assert alert["jaeger_url"] == f"{stack.jaeger_url}/trace/{alert['trace_id']}"
    assert alert["logs_url"] == logs_link(stack.victorialogs_url, alert["trace_id"])


@pytest.fixture
def channels(receiver, smtp_inbox, alertmanager, sentry_endpoint):
    watched = Channels(receiver, smtp_inbox, alertmanager, sentry_endpoint)
    yield watched
    watched.close()


# -- the P0 conditions -----------------------------------------------------------------------------------------
def test_p0_conditions_notify_every_channel_once_and_resolve_once(
    own_stack, own_demo, fakes, own_redis, channels, small_disk, workdir
):
    """Invalid key, Redis, database, FFmpeg, worker, disk and 11 failures across two workers: each one
    notification per channel with its error_code (trace_id + Jaeger link for the API ones), one resolved each."""
    ffmpeg = workdir / "bin" / "ffmpeg"
    ffmpeg.parent.mkdir()
    shutil.copy2(Path("/usr/bin/ffmpeg").resolve(), ffmpeg)
    monitor = served_monitor(
        own_stack,
        workdir,
        shipped_rules_for_speed(),
        channels.config(),
        health={
            "redis_url": own_redis.redis_url,
            "celery_broker_url": own_stack.redis_url,
            "ffmpeg_binary": str(ffmpeg),
            "disk_path": str(small_disk),
        },
    )
    with monitor:
        url = monitor.url
        wait_until(
            lambda: all(check["status"] == "healthy" for check in _health(url).values()), 60, what="every check healthy"
        )
        channels.watch(monitor)

        # Gemini's key invalid: one project calls it.
        fakes.set_fault("gemini", mode="invalid_key")
        accepted = create_project(own_demo, ["gemini"])
        wait_finished(own_demo, {accepted["project_id"]})
        gemini = fired(channels, "GEMINI_INVALID_API_KEY", service="gemini")
        assert_api_alert(gemini, own_stack, {accepted["trace_id"]})
        fakes.set_fault("gemini", mode="ok", latencies=[0])

        # Redis of the health check stopped, then started.
        own_redis.stop()
        firing = fired(channels, "REDIS_CONNECTION_FAILED")
        own_redis.start("redis")
        resolved(channels, "REDIS_CONNECTION_FAILED", firing)

        # PostgreSQL stopped (fast shutdown: the monitor's pooled connection must not hold it up), then started.
        own_stack.processes.pop("postgres").stop(sig=signal.SIGINT)
        firing = fired(channels, "DATABASE_CONNECTION_FAILED")
        own_stack.start("postgres")
        resolved(channels, "DATABASE_CONNECTION_FAILED", firing)

        # FFmpeg removed from the path the backend runs it from, then restored.
        ffmpeg.unlink()
        firing = fired(channels, "FFMPEG_NOT_FOUND")
        shutil.copy2(Path("/usr/bin/ffmpeg").resolve(), ffmpeg)
        resolved(channels, "FFMPEG_NOT_FOUND", firing)

        # The demo's Celery worker stopped, then started again.
        own_demo.processes.pop("worker").stop(timeout=30)
        firing = fired(channels, "CELERY_WORKER_DOWN")
        own_demo.processes["worker"] = own_demo.worker().start()
        resolved(channels, "CELERY_WORKER_DOWN", firing)

        # The disk filled past 90 %, then freed.
        filler = small_disk / "filler"
        subprocess.run(["fallocate", "-l", str(int(8 * 1024 * 1024 * 0.95)), str(filler)], check=True)
        firing = fired(channels, "DISK_SPACE_INSUFFICIENT")
        filler.unlink()
        resolved(channels, "DISK_SPACE_INSUFFICIENT", firing)

        # Stability fails 11 times in a row, the projects taken by the worker's two processes (the backend on
        # default settings: only OTEL_MONITOR_REDIS_URL); then recovers.
        fakes.set_fault("stability", mode="server_error")
        failing = [create_project(own_demo, ["stability"]) for _ in range(11)]
        wait_finished(own_demo, {project["project_id"] for project in failing})
        streak = RedisFailureStreaks(redis.Redis.from_url(own_stack.redis_url)).current("stability")
        assert streak.count == 11
        # Both worker processes (each its own service.instance.id = Prometheus `instance`) made failing calls.
        per_process = (
            f'sum by (instance) ({PromNames.ERRORS}{{job="{own_demo.worker_service}", service="stability"}}) > 0'
        )
        by_instance = wait_until(
            lambda: (
                len(found := prom_values(own_stack.prometheus_url, per_process, ("instance",))) >= 2
                and sum(found.values()) == 11
                and found
            ),
            30,
            what="failures from two processes",
        )
        assert len(by_instance) == 2
        firing = fired(channels, STREAK_CODE, service="stability")
        assert_api_alert(firing, own_stack, {project["trace_id"] for project in failing})
        assert firing["alert"]["trace_id"] == streak.last_trace_id
        fakes.set_fault("stability", mode="ok", latencies=[0])
        wait_finished(own_demo, {create_project(own_demo, ["stability"])["project_id"]})
        # The success ends the streak; its peak stays readable for a minute (so no evaluation can miss it).
        resolved(channels, STREAK_CODE, firing, timeout=DEFAULT_PEAK_TTL_SECONDS + 60)

        # Nothing else went to the P0 channels, and nothing twice (the rules went on being evaluated every second).
        induced = {
            "GEMINI_INVALID_API_KEY",
            "REDIS_CONNECTION_FAILED",
            "DATABASE_CONNECTION_FAILED",
            "FFMPEG_NOT_FOUND",
            "CELERY_WORKER_DOWN",
            "DISK_SPACE_INSUFFICIENT",
            STREAK_CODE,
        }
        hooks = [x["json"] for x in channels.receiver.requests if x["path"] == "/hook"]
        assert {hook["alert"]["error_code"] for hook in hooks} == induced
        for code in induced:
            counts = {channel: len(items) for channel, items in channels.firing(code).items()}
            # Only Gemini's alert is still firing: its rule looks back 5 minutes, longer than this test.
            active = 1 if code == "GEMINI_INVALID_API_KEY" else 0
            assert counts == {**dict.fromkeys(counts, 1), "alertmanager": active}, code
        assert len(hooks) == 2 * len(induced) - 1  # each fired once, each but Gemini's resolved once
        assert len(channels.smtp.messages) == len(hooks)
        assert len(channels.sentry.events()) == len(induced)


# -- durability of the served monitor ----------------------------------------------------------------------------
def _hooks(receiver, status: str, code: str) -> list[dict]:
    return [
        x
        for x in receiver.requests
        if x["path"] == "/hook" and x["json"]["status"] == status and x["json"]["alert"]["error_code"] == code
    ]


def test_receiver_down_sigkill_mid_delivery_and_prometheus_down(own_stack, own_redis, receiver, workdir):
    """A webhook receiver down, then back: the firing is delivered once. The monitor SIGKILLed while the resolved
    one is in flight, then restarted: it is delivered (same Idempotency-Key), nothing fires again. Prometheus
    stopped: MONITORING_BACKEND_DOWN is delivered, and resolved once Prometheus is back."""
    # YoutubeInvalidApiKey: a P0 PromQL rule (nothing here makes it fire), so a stopped Prometheus is noticed.
    rules = shipped_rules_for_speed({"RedisDown", "ApiConsecutiveFailuresCritical", "YoutubeInvalidApiKey"})
    monitor = served_monitor(
        own_stack,
        workdir,
        rules,
        {"ops-hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
        health={"redis_url": own_redis.redis_url},
    )
    monitor.start()
    try:
        wait_until(lambda: _health(monitor.url)["redis"]["status"] == "healthy", 60, what="Redis healthy")

        # The receiver is down while Redis fails: the delivery is retried until the receiver is back.
        receiver.stop()
        own_redis.stop()
        wait_until(
            lambda: any(
                a["error_code"] == "REDIS_CONNECTION_FAILED" and a["state"] == "firing"
                for a in httpx.get(f"{monitor.url}/api/v1/alerts", timeout=10).json()["alerts"]
            ),
            30,
            what="the alert firing while its receiver is down",
        )
        receiver.start()
        wait_until(lambda: _hooks(receiver, "firing", "REDIS_CONNECTION_FAILED"), 30, what="the firing delivered")

        # The resolved notification hangs at the receiver; the monitor is killed meanwhile and restarted.
        receiver.hang = True
        own_redis.start("redis")
        in_flight = wait_until(
            lambda: _hooks(receiver, "resolved", "REDIS_CONNECTION_FAILED"),
            30,
            what="the resolved notification in flight",
        )
        monitor.process.kill()
        attempts_before_kill = len(_hooks(receiver, "resolved", "REDIS_CONNECTION_FAILED"))
        receiver.hang = False
        receiver.release.set()
        monitor.start()
        wait_until(
            lambda: len(_hooks(receiver, "resolved", "REDIS_CONNECTION_FAILED")) > attempts_before_kill,
            120,
            what="the resolved notification delivered by the restarted monitor",
        )
        keys = {hook["headers"]["idempotency-key"] for hook in _hooks(receiver, "resolved", "REDIS_CONNECTION_FAILED")}
        assert keys == {in_flight[0]["headers"]["idempotency-key"]}  # the same notification, not a new one
        assert len(_hooks(receiver, "firing", "REDIS_CONNECTION_FAILED")) == 1  # the restart fired nothing again

        # Prometheus stopped: the monitor says so on the channel that still works; started again: resolved.
        own_stack.processes.pop("prometheus").stop()
        code = SystemErrorCode.MONITORING_BACKEND_DOWN.value
        (down,) = wait_until(lambda: _hooks(receiver, "firing", code), 60, what=f"{code} delivered")
        assert down["json"]["alert"]["priority"] == "P0"
        # Health and quota keep serving meanwhile (this test runs no Celery worker: 503 is the report's verdict).
        health = httpx.get(f"{monitor.url}/api/v1/system/health", timeout=10)
        assert health.status_code in (200, 503) and health.json()["checks"]["redis"]["status"] == "healthy"
        assert httpx.get(f"{monitor.url}/api/v1/system/quota", timeout=10).status_code == 200
        own_stack.start("prometheus")
        wait_until(lambda: _hooks(receiver, "resolved", code), 60, what=f"{code} resolved")
        assert len(_hooks(receiver, "firing", code)) == 1
        assert len(_hooks(receiver, "resolved", code)) == 1
        # Delivered by the restarted monitor once, and not again since.
        assert len(_hooks(receiver, "resolved", "REDIS_CONNECTION_FAILED")) == attempts_before_kill + 1
    finally:
        monitor.stop()
        if "prometheus" not in own_stack.processes:
            own_stack.start("prometheus")

"""Acceptance of silences on a stack of its own, the demo backend and a served monitor with the shipped Gemini
invalid-key and Redis P0 rules, driven through the ``otel-monitor silence`` CLI:

- a silence on ``service=gemini`` holds the Gemini invalid-key P0: silenced in ``/api/v1/alerts``, nothing at the
  receiver; expiring it while the key is still invalid delivers the firing once;
- the Redis P0, fired and delivered, then resolved under a silence: its resolved notification goes out;
- the CLI exits non-zero, saying why, on an unknown silence, on bad input and on a monitor it cannot reach.
"""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from otel_monitor.monitor.cli import main
from tests.integration.test_alert_acceptance import shipped_rules_for_speed
from tests.support.demo import create_project, demo_backend, wait_finished
from tests.support.monitor import alerting_monitor
from tests.support.stacks import private_stack, server_workdir
from tools.devstack import wait_until

pytestmark = pytest.mark.stack

GEMINI_CODE = "GEMINI_INVALID_API_KEY"
REDIS_CODE = "REDIS_CONNECTION_FAILED"
# Passes of the P0 rules (every second) a held notification is given to show up if it were (wrongly) sent.
SETTLE_SECONDS = 5


@pytest.fixture(scope="module")
def own_stack():
    """A stack of this module alone: its Prometheus holds only this module's Gemini errors."""
    with private_stack("otel-monitor-silences-") as dev:
        yield dev


@pytest.fixture(scope="module")
def own_demo(own_stack, fakes):
    workdir = server_workdir("otel-monitor-silences-demo-")
    backend = demo_backend(own_stack, fakes, workdir, "silences").start()
    yield backend
    backend.stop()
    fakes.set_fault("gemini", mode="ok", latencies=[0])
    shutil.rmtree(workdir, ignore_errors=True)


def hooks(receiver, status: str, code: str) -> list[dict]:
    return [
        x["json"]
        for x in receiver.requests
        if x["path"] == "/hook" and x["json"]["status"] == status and x["json"]["alert"]["error_code"] == code
    ]


def api_alert(url: str, code: str) -> dict | None:
    alerts = httpx.get(f"{url}/api/v1/alerts", params={"state": "firing"}, timeout=10).json()["alerts"]
    return next((alert for alert in alerts if alert["error_code"] == code), None)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``otel-monitor ARGV`` in this process: its exit status, stdout and stderr."""
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out.strip(), err.strip()


def test_silences_hold_release_and_let_resolutions_through(own_stack, own_demo, fakes, own_redis, receiver, capsys):
    """The issue's acceptance of silences, end to end on real servers, through the CLI."""
    workdir = server_workdir("otel-monitor-silences-monitor-")
    monitor = alerting_monitor(
        own_stack,
        workdir,
        shipped_rules_for_speed({"GeminiInvalidApiKey", "RedisDown"}),
        {"hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
        service_name="monitor-silences-under-test",
        health={"redis_url": own_redis.redis_url},
    )
    try:
        with monitor:
            url = monitor.url
            wait_until(
                lambda: (
                    httpx.get(f"{url}/api/v1/system/health", timeout=10).json()["checks"]["redis"]["status"]
                    == "healthy"
                ),
                60,
                what="Redis healthy",
            )

            # A silence on service=gemini, then Gemini's key invalid: the P0 fires, silenced, and nothing is sent.
            status, silence_id, err = cli(
                capsys, "silence", "add", "--url", url, "--matcher", "service=gemini", "--matcher",
                "rule=~Gemini.*", "--duration", "1h", "--comment", "Gemini key rotation", "--author", "ana",
            )  # fmt: skip
            assert (status, err) == (0, "")
            status, listed, _ = cli(capsys, "silence", "list", "--url", url, "--state", "active")
            assert status == 0 and silence_id in listed and "service=gemini,rule=~Gemini.*" in listed

            fakes.set_fault("gemini", mode="invalid_key")
            accepted = create_project(own_demo, ["gemini"])
            wait_finished(own_demo, {accepted["project_id"]})
            alert = wait_until(lambda: api_alert(url, GEMINI_CODE), 60, what="the Gemini P0 firing in the API")
            assert alert["silenced_by"] == [silence_id]
            time.sleep(SETTLE_SECONDS)
            assert hooks(receiver, "firing", GEMINI_CODE) == []

            # The silence expired while the key is still invalid: the firing goes out, once.
            status, out, _ = cli(capsys, "silence", "expire", "--url", url, silence_id)
            assert status == 0 and out.startswith(f"{silence_id} expired")
            (firing,) = wait_until(lambda: hooks(receiver, "firing", GEMINI_CODE), 30, what="the released firing")
            assert firing["alert"]["fingerprint"] == alert["fingerprint"]
            time.sleep(SETTLE_SECONDS)
            assert len(hooks(receiver, "firing", GEMINI_CODE)) == 1
            assert api_alert(url, GEMINI_CODE)["silenced_by"] == []
            fakes.set_fault("gemini", mode="ok", latencies=[0])

            # Redis down: its P0 delivered; silenced; Redis back: the resolved notification goes out all the same.
            own_redis.stop()
            wait_until(lambda: hooks(receiver, "firing", REDIS_CODE), 60, what="the Redis P0 firing")
            status, _, _ = cli(
                capsys, "silence", "add", "--url", url, "--matcher", f"error_code={REDIS_CODE}", "--duration", "1h",
                "--comment", "Redis maintenance",
            )  # fmt: skip
            assert status == 0
            wait_until(lambda: api_alert(url, REDIS_CODE)["silenced_by"], 30, what="the Redis P0 silenced")
            own_redis.start("redis")
            (resolved,) = wait_until(lambda: hooks(receiver, "resolved", REDIS_CODE), 60, what="the Redis resolution")
            assert resolved["alert"]["error_code"] == REDIS_CODE
            assert len(hooks(receiver, "firing", REDIS_CODE)) == 1

            # The CLI's errors: an unknown silence (404), a silence ending before it starts (422), and (below) a
            # monitor it cannot reach.
            status, _, err = cli(capsys, "silence", "expire", "--url", url, "no-such-silence")
            assert status == 1 and "404" in err and "no-such-silence" in err
            status, _, err = cli(
                capsys, "silence", "add", "--url", url, "--matcher", "service=gemini", "--start",
                "2030-01-02T00:00:00Z", "--end", "2030-01-01T00:00:00Z", "--comment", "backwards",
            )  # fmt: skip
            assert status == 1 and "422" in err and "ends_at: Value error, must be after starts_at" in err
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    status, _, err = cli(capsys, "silence", "list", "--url", url)
    assert status == 1 and "cannot reach the monitor" in err

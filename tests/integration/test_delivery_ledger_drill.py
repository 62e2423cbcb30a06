"""The delivery ledger (`GET /api/v1/notifications`) and the fire drill (`POST /api/v1/notifications/test`,
`otel-monitor notify-test`) on real receivers, over a SQLite file and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.drill import run_fire_drill
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.notifications_router import build_notifications_router
from otel_monitor.monitor.alerting.notifiers import WebSocketHub, build_notifiers
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from tests.support.paths import REPO_ROOT
from tests.support.receivers import Receiver

HOOK_TOKEN = "hooktoken-secret-4242"
# A 5xx is retried fast and given up after 3 s (never at its first attempt, however slow the machine): a drill
# settling for longer sees it `failed`, one reporting first outcomes sees it `retrying`.
GIVE_UP_FAST = {"initial_backoff_seconds": 0.1, "max_backoff_seconds": 0.5, "max_age_seconds": 3}
SETTLE_PAST_GIVING_UP = "5"


def delivery_config(ok: Receiver, broken: Receiver, retry: dict) -> dict:
    """Two webhooks routed for P0: `ok` and `broken` (its URL carries a secret the ledger must not show)."""
    return {
        "channels": {
            "ok": {"type": "webhook", "url": f"{ok.url}/hook", "timeout_seconds": 2},
            "broken": {"type": "webhook", "url": f"{broken.url}/hook/{HOOK_TOKEN}", "timeout_seconds": 2},
        },
        "routing": {"P0": ["ok", "broken"], "P1": [], "P2": []},
        "retry": retry,
    }


@pytest.fixture
def broken_receiver():
    """A second receiver, answering 500 to everything."""
    running = Receiver().start()
    running.status = 500
    yield running
    running.stop()


@pytest.fixture
def served_ledger(store_url, receiver, broken_receiver):
    """The notifications router over an outbox on ``store_url`` and a Dispatcher of the two webhooks."""
    config = DeliveryConfig.model_validate(delivery_config(receiver, broken_receiver, GIVE_UP_FAST))
    outbox = Outbox(store_url)
    client = httpx.AsyncClient()
    notifiers = build_notifiers(config, client=client, websocket_hub=WebSocketHub())
    app = FastAPI()
    app.include_router(build_notifications_router())
    app.state.alerting = SimpleNamespace(
        outbox=outbox, dispatcher=Dispatcher.from_config(outbox, config, notifiers), delivery=config
    )
    with TestClient(app) as api:
        yield api
    outbox.close()
    outbox.executor.shutdown()


def test_drill_reports_each_channel_and_the_ledger_shows_their_attempts(served_ledger, receiver, broken_receiver):
    """A receiver answering 200 is delivered at the first attempt; one answering 500 is retried, then given up
    (failed); the ledger lists both with every attempt's result, status code and scrubbed error."""
    drill = served_ledger.post("/api/v1/notifications/test", params={"settle_seconds": SETTLE_PAST_GIVING_UP})
    assert drill.status_code == 200, drill.text
    body = drill.json()
    outcomes = {result["channel"]: (result["outcome"], result["reason"]) for result in body["channels"]}
    assert body["ok"] is False
    assert outcomes["ok"] == ("delivered", "HTTP 200")
    assert outcomes["broken"][0] == "failed" and outcomes["broken"][1].startswith("HTTP 500")
    assert "given up after" in outcomes["broken"][1]
    assert len(receiver.requests) == 1 and len(broken_receiver.requests) >= 2

    ledger = {row["channel"]: row for row in served_ledger.get("/api/v1/notifications").json()["notifications"]}
    assert ledger["ok"]["status"] == "delivered" and ledger["broken"]["status"] == "given_up"
    assert ledger["ok"]["rule"] == "notify_test" and ledger["ok"]["priority"] == "P0"
    assert ledger["ok"]["transition"] == "firing"
    assert [(a["result"], a["status_code"], a["error"]) for a in ledger["ok"]["attempts"]] == [("ok", 200, None)]
    broken = ledger["broken"]["attempts"]
    assert [a["result"] for a in broken] == ["retry"] * (len(broken) - 1) + ["failed"]
    assert {a["status_code"] for a in broken} == {500}
    assert all(a["error"].startswith("HTTP 500") for a in broken)
    assert [a["attempt"] for a in broken] == list(range(1, len(broken) + 1))
    assert HOOK_TOKEN not in served_ledger.get("/api/v1/notifications").text


def test_drill_without_settling_reports_a_5xx_as_retrying(served_ledger):
    """By default the drill reports each channel's first outcome: a 5xx waits for its retry (`retrying`)."""
    (result,) = served_ledger.post("/api/v1/notifications/test", params={"channel": "broken"}).json()["channels"]
    assert (result["channel"], result["outcome"], result["attempts"]) == ("broken", "retrying", 1)
    assert result["reason"].startswith("HTTP 500") and "next at" in result["reason"]


@pytest.mark.parametrize(
    "params, status, expected",
    [
        ({"channel": "ok"}, "delivered", {"ok"}),
        ({"channel": "broken"}, None, {"broken"}),
        ({"status": "given_up"}, None, set()),
        ({"since": "2999-01-01T00:00:00Z"}, None, set()),
        ({"since": "2000-01-01T00:00:00"}, None, {"ok", "broken"}),
    ],
)
def test_ledger_filters(served_ledger, params, status, expected):
    """The ledger filters by channel, status and queue time (an offset-less time is UTC)."""
    served_ledger.post("/api/v1/notifications/test")
    rows = served_ledger.get("/api/v1/notifications", params=params).json()["notifications"]
    assert {row["channel"] for row in rows} == expected
    assert status is None or {row["status"] for row in rows} == {status}


@pytest.mark.parametrize(
    "method, path, params, status",
    [
        ("get", "/api/v1/notifications", {"status": "lost"}, 422),
        ("get", "/api/v1/notifications", {"since": "yesterday"}, 422),
        ("get", "/api/v1/notifications", {"limit": "0"}, 422),
        ("post", "/api/v1/notifications/test", {"channel": "nope"}, 404),
        ("post", "/api/v1/notifications/test", {"settle_seconds": "-1"}, 422),
    ],
)
def test_bad_parameters_answer_json_errors(served_ledger, method, path, params, status):
    """An unknown status, a time that is not one, a bad limit or wait: 422 JSON; a drill of an unknown channel:
    404 JSON naming the known ones."""
    answer = getattr(served_ledger, method)(path, params=params)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json" and answer.json()["detail"]


def test_drill_function_reports_channels_in_the_order_asked(store_url, receiver, broken_receiver):
    """run_fire_drill answers one result per channel asked for, in that order."""
    config = DeliveryConfig.model_validate(delivery_config(receiver, broken_receiver, GIVE_UP_FAST))
    outbox = Outbox(store_url)

    async def drill() -> list:
        async with httpx.AsyncClient() as client:
            notifiers = build_notifiers(config, client=client, websocket_hub=WebSocketHub())
            return await run_fire_drill(outbox, Dispatcher.from_config(outbox, config, notifiers), ["broken", "ok"])

    try:
        assert [(r.channel, r.outcome) for r in asyncio.run(drill())] == [("broken", "retrying"), ("ok", "delivered")]
    finally:
        outbox.close()
        outbox.executor.shutdown()


def notify_test(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "otel_monitor.monitor.cli", "notify-test", "--config", str(config_path), *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


@pytest.fixture
def drill_config(tmp_path, store_url, receiver, broken_receiver) -> Path:
    """A monitor config of the two webhooks on ``store_url`` (alerting itself off: the drill needs no rules)."""
    path = tmp_path / "monitor.yaml"
    delivery = delivery_config(receiver, broken_receiver, GIVE_UP_FAST)
    path.write_text(
        yaml.safe_dump({"alerting": {"enabled": False, "store_url": store_url, "delivery": delivery}}, sort_keys=False)
    )
    return path


@pytest.mark.parametrize(
    "args, code, lines",
    [
        ((), 1, ["ok: delivered: HTTP 200", "broken: retrying: HTTP 500"]),
        (("--channel", "ok"), 0, ["ok: delivered: HTTP 200"]),
        (("--channel", "broken", "--settle-seconds", SETTLE_PAST_GIVING_UP), 1, ["broken: failed: HTTP 500"]),
    ],
)
def test_cli_drill_exits_non_zero_when_a_channel_is_not_delivered(drill_config, args, code, lines):
    """`otel-monitor notify-test` prints each channel's outcome and reason; exit 1 if any failed or is retrying."""
    result = notify_test(drill_config, *args)
    assert result.returncode == code, result.stderr
    printed = result.stdout.splitlines()
    assert len(printed) == len(lines)
    assert all(line.startswith(prefix) for line, prefix in zip(printed, lines, strict=True))
    assert HOOK_TOKEN not in result.stdout + result.stderr


def test_cli_drill_of_an_unknown_channel_exits_2(drill_config):
    """An unknown channel name is a configuration error: exit 2, naming the known channels."""
    result = notify_test(drill_config, "--channel", "nope")
    assert result.returncode == 2
    assert "unknown channel 'nope' (known: broken, ok)" in result.stderr

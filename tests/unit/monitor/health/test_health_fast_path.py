"""The health endpoint's pre-rendered responses and the monitor app's fast path for them."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from otel_monitor.instrument.probe_paths import HEALTH_PATH
from otel_monitor.monitor.app import create_app
from otel_monitor.monitor.auth.config import ApiToken, AuthConfig, hash_token
from otel_monitor.monitor.auth.config import Scope as TokenScope
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.health.router import HealthResponder, ReplicaStatus
from otel_monitor.monitor.health.service import HealthService


class StaticCheck:
    """A check answering ``result``: the test changes it between reports."""

    def __init__(self, name: str, status: str) -> None:
        self.name = name
        self.result = {"status": status, "latency_ms": 1.5}

    async def run(self) -> dict:
        return dict(self.result)


def _monitor(status: str, *, auth: bool) -> TestClient:
    """The monitor's app on one static check, driven without its lifespan (the health service answers the first
    request with its first report; the app's other services are not what these tests are about)."""
    tokens = [ApiToken(name="reader", scopes=[TokenScope.READ], sha256=hash_token("r" * 40))] if auth else []
    config = MonitorConfig(auth=AuthConfig(tokens=tokens))
    return TestClient(create_app(config, health=HealthService([StaticCheck("redis", status)], timeout=1, ttl=300)))


@pytest.mark.parametrize("auth", [False, True])
@pytest.mark.parametrize("status", ["healthy", "degraded", "unhealthy"])
@pytest.mark.parametrize(
    "accept",
    [None, "*/*", "application/json", "application/health+json", "application/json;q=0.5, application/health+json"],
)
def test_fast_path_answers_as_the_route_does(auth, status, accept):
    """A GET of the health path answered by the fast path has the route's status, headers and body, byte for byte,
    with and without API tokens (the endpoint stays open)."""
    headers = {"accept": accept} if accept is not None else {}
    client = _monitor(status, auth=auth)  # no lifespan: the first request awaits the first report
    fast = client.get(HEALTH_PATH, headers=headers)
    client.app.health_responder = None  # the same app, through FastAPI's routing and middlewares
    routed = client.get(HEALTH_PATH, headers=headers)
    assert fast.status_code == routed.status_code == (503 if status == "unhealthy" else 200)
    assert fast.content == routed.content
    for header in ("content-type", "content-length", "cache-control"):
        assert fast.headers[header] == routed.headers[header], header


def test_health_gets_skip_the_middlewares_other_requests_do_not():
    """Health GETs never reach the app's middlewares (auth, telemetry, routing); a HEAD of it and other routes do."""
    seen: list[tuple[str, str]] = []

    class Recorder:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                seen.append((scope["method"], scope["path"]))
            await self.app(scope, receive, send)

    client = _monitor("healthy", auth=True)
    client.app.add_middleware(Recorder)
    assert client.get(HEALTH_PATH).status_code == 200
    client.head(HEALTH_PATH)
    assert client.get("/livez").status_code == 200
    assert client.get("/api/v1/alerts").status_code == 401
    assert seen == [("HEAD", HEALTH_PATH), ("GET", "/livez"), ("GET", "/api/v1/alerts")]


@pytest.mark.parametrize(
    "change, rerendered",
    [
        ("nothing", False),
        ("new report", True),
        ("leadership", True),
    ],
)
def test_rendered_response_is_reused_until_the_report_or_the_replica_changes(change, rerendered):
    """The same report and replica state are answered with the same rendered bytes; a new report or a change of
    leadership renders anew, so a probe never sees a stale body."""
    check = StaticCheck("redis", "healthy")
    service = HealthService([check], timeout=1, ttl=300)
    replica = ReplicaStatus(id="monitor-a", leader=True, ha=True)
    responder = HealthResponder(service, lambda: replica)

    async def run() -> tuple[bytes, bytes, bool]:
        nonlocal replica
        first = await responder.response(None)
        if change == "new report":
            check.result = {"status": "unhealthy", "error": "down"}
            await service.refresh()
        elif change == "leadership":
            replica = ReplicaStatus(id="monitor-a", leader=False, ha=True)
        second = await responder.response(None)
        return first.body, second.body, first is second

    first, second, same = asyncio.run(run())
    assert same is not rerendered
    assert (first != second) is rerendered

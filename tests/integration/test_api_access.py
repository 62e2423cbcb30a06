"""Access control on a served monitor: every route of the app (enumerated, so routes added later are covered)
refuses without a token of the scope its method needs; open routes answer anyone; the WebSocket authenticates;
no token ever reaches the logs."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.routing import BaseRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from otel_monitor.monitor.app import create_app
from otel_monitor.monitor.auth.config import AuthConfig, Scope
from otel_monitor.monitor.auth.middleware import open_paths, required_scope
from otel_monitor.monitor.config import MonitorConfig
from tests.support.monitor import API_TOKENS, secured_monitor

_WS_PATH = "/api/v1/alerts/ws"


@pytest.fixture(scope="module")
def served(stack, tmp_path_factory):
    """The secured monitor, serving; its workdir holds its logs."""
    from tests.support.receivers import Receiver

    receiver = Receiver().start()
    process = secured_monitor(
        stack, tmp_path_factory.mktemp("access"), f"{receiver.url}/hook", service_name="monitor-access-under-test"
    ).start()
    yield process
    process.stop()
    receiver.stop()


def _flat(routes: list, prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """(path prefix, route) of every route, those of included routers too."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat(included.routes, prefix + route.include_context.prefix)
        else:
            yield prefix, route


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every HTTP route of the app, path parameters filled in."""
    found = []
    for prefix, route in _flat(create_app(MonitorConfig()).routes):
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, re.sub(r"\{[^}]+\}", "x", prefix + getattr(route, "path", ""))))
    return found


_OPEN = open_paths(create_app(MonitorConfig()), AuthConfig())
_PROTECTED = [(method, path) for method, path in _routes() if path not in _OPEN]


def _call(url: str, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{url}{path}", headers=headers, timeout=30)


def test_every_route_is_enumerated():
    """The enumeration sees the API's reads and writes and its WebSocket, so the tables below are not vacuous."""
    assert ("GET", "/api/v1/alerts") in _PROTECTED and ("POST", "/api/v1/notifications/test") in _PROTECTED
    assert _WS_PATH in {
        prefix + getattr(route, "path", "") for prefix, route in _flat(create_app(MonitorConfig()).routes)
    }


@pytest.mark.parametrize("method, path", _PROTECTED)
def test_protected_route_refuses_without_the_right_scope(served, method, path):
    """No token or an unknown one: 401 JSON with a Bearer challenge. A read token passes reads and gets 403 on
    writes; a write token passes writes."""
    for token in (None, "not-a-configured-token"):
        answer = _call(served.url, method, path, token)
        assert answer.status_code == 401, (token, answer.text)
        assert answer.json()["detail"] and answer.headers["www-authenticate"].startswith("Bearer")
    needed = required_scope(method)
    as_reader = _call(served.url, method, path, API_TOKENS["read"])
    if needed is Scope.READ:
        assert as_reader.status_code not in (401, 403), as_reader.text
    else:
        assert as_reader.status_code == 403 and "needs scope write" in as_reader.json()["detail"]
        assert _call(served.url, method, path, API_TOKENS["write"]).status_code not in (401, 403)


@pytest.mark.parametrize("method, path", [(m, p) for m, p in _routes() if p in _OPEN])
def test_open_routes_answer_without_a_token(served, method, path):
    """The probes and the API's documentation answer anyone (the health endpoint 200 or its documented 503)."""
    assert _call(served.url, method, path, None).status_code in (200, 503)


@pytest.mark.parametrize(
    "headers, subprotocols, answered",
    [
        ({"Authorization": f"Bearer {API_TOKENS['read']}"}, None, None),
        ({}, ["bearer", f"bearer.{API_TOKENS['read']}"], "bearer"),
    ],
)
def test_websocket_accepts_a_token_in_the_header_or_the_subprotocol(served, headers, subprotocols, answered):
    """A read token in the Authorization header, or (browsers) in the subprotocol bearer.<token>: the server
    answers `bearer`, never the token."""
    url = f"ws://127.0.0.1:{served.port}{_WS_PATH}"
    with connect(url, additional_headers=headers, subprotocols=subprotocols, open_timeout=10) as websocket:
        assert websocket.subprotocol == answered


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-configured-token"}])
def test_websocket_without_a_valid_token_is_refused(served, headers):
    """No token or an unknown one: the upgrade is refused."""
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{served.port}{_WS_PATH}", additional_headers=headers, open_timeout=10)
    assert refused.value.response.status_code in (401, 403)


def test_no_token_reaches_the_logs(served):
    """After every call above (run this module whole), the monitor's output and log files hold no token."""
    for token in API_TOKENS.values():
        _call(served.url, "GET", "/api/v1/alerts", token)
        _call(served.url, "POST", "/api/v1/notifications/test", token)
    logs = [served.workdir / "monitor.out", *sorted((served.workdir / "logs").rglob("*"))]
    text = "".join(path.read_text(errors="replace") for path in logs if path.is_file())
    assert text, "the monitor wrote nothing: the check would be vacuous"
    for token in API_TOKENS.values():
        assert token not in text

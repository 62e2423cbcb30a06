"""Access control: token hashing, constant-time lookup, nested scopes, the auth config and the middleware."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from otel_monitor.monitor.alerting.router import ALERTS_WS_PATH
from otel_monitor.monitor.app import create_app
from otel_monitor.monitor.auth.config import ApiToken, AuthConfig, Scope, hash_token, unauthenticated_exposure
from otel_monitor.monitor.auth.middleware import install_auth, required_scope
from otel_monitor.monitor.auth.tokens import TokenTable, bearer_token
from otel_monitor.monitor.cli import main
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.config_file import ConfigError, load_config_file

READ_TOKEN, WRITE_TOKEN, ADMIN_TOKEN = "r" * 40, "w" * 40, "a" * 40
_HASH = "ab" * 32


def _tokens() -> list[ApiToken]:
    return [
        ApiToken(name="reader", scopes=[Scope.READ], sha256=hash_token(READ_TOKEN)),
        ApiToken(name="writer", scopes=[Scope.READ, Scope.WRITE], sha256=hash_token(WRITE_TOKEN)),
        ApiToken(name="admin", scopes=[Scope.ADMIN], sha256=hash_token(ADMIN_TOKEN).upper()),
    ]


def test_hash_token_is_hex_sha256():
    """The stored form of a token is the hex SHA-256 of its UTF-8 bytes."""
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    "held, needed, allowed",
    [
        (Scope.READ, Scope.READ, True),
        (Scope.READ, Scope.WRITE, False),
        (Scope.WRITE, Scope.READ, True),
        (Scope.WRITE, Scope.WRITE, True),
        (Scope.WRITE, Scope.ADMIN, False),
        (Scope.ADMIN, Scope.WRITE, True),
    ],
)
def test_scopes_nest(held, needed, allowed):
    """admin includes write, which includes read."""
    assert held.includes(needed) is allowed


@pytest.mark.parametrize(
    "presented, name, scope",
    [
        (READ_TOKEN, "reader", Scope.READ),
        (WRITE_TOKEN, "writer", Scope.WRITE),
        (ADMIN_TOKEN, "admin", Scope.ADMIN),
        ("unknown-token", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_token_table_grants_the_widest_scope_of_a_known_token(presented, name, scope):
    """A known token (its hash in any case) grants its widest scope; unknown, empty or absent ones nothing."""
    grant = TokenTable(_tokens()).grant(presented)
    assert (grant.name, grant.scope) == (name, scope) if grant else name is None


@pytest.mark.parametrize(
    "header, token",
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_of_an_authorization_header(header, token):
    """Only the Bearer scheme carries a token."""
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    "method, scope",
    [("GET", Scope.READ), ("HEAD", Scope.READ), ("POST", Scope.WRITE), ("PUT", Scope.WRITE),
     ("PATCH", Scope.WRITE), ("DELETE", Scope.WRITE), ("OPTIONS", Scope.WRITE)],
)  # fmt: skip
def test_required_scope_follows_the_method(method, scope):
    """Reads need read; every other method (unknown ones included: default deny) needs write."""
    assert required_scope(method) is scope


def test_from_env_token_is_hashed_at_load_and_not_kept(monkeypatch):
    """A token read from the environment is stored as its hash only."""
    monkeypatch.setenv("ONCALL_TOKEN", WRITE_TOKEN)
    token = ApiToken.model_validate({"name": "oncall", "scopes": ["write"], "from_env": "ONCALL_TOKEN"})
    assert token.sha256 == hash_token(WRITE_TOKEN)
    assert WRITE_TOKEN not in repr(token.model_dump())


@pytest.mark.parametrize(
    "tokens_yaml, line, key, message",
    [
        ("    - {name: a, scopes: [read], from_env: UNSET_VARIABLE}\n", 5, "auth.tokens.0.from_env", "UNSET_VARIABLE"),
        ("    - name: a\n      scopes: [root]\n      sha256: " + _HASH + "\n", 6, "auth.tokens.0.scopes.0", "'read'"),
        ("    - {name: a, scopes: [read]}\n", 5, "auth.tokens.0", "exactly one of sha256"),
        ("    - {name: a, scopes: [read], sha256: abc}\n", 5, "auth.tokens.0.sha256", "pattern"),
    ],
)  # fmt: skip
def test_auth_config_errors_name_file_line_and_key(tmp_path, monkeypatch, tokens_yaml, line, key, message):
    """An unset variable, an unknown scope, no or a malformed hash: each names the file, the line and the key."""
    monkeypatch.delenv("UNSET_VARIABLE", raising=False)
    path = tmp_path / "monitor.yaml"
    path.write_text("server:\n  port: 8080\nauth:\n  tokens:\n" + tokens_yaml)
    with pytest.raises(ConfigError) as error:
        load_config_file(path, MonitorConfig)
    (problem,) = error.value.problems
    assert (problem.line, problem.key) == (line, key) and message in problem.message, str(problem)
    assert str(path) in str(problem)


@pytest.mark.parametrize(
    "auth, host, refused",
    [
        ({}, "127.0.0.1", False),
        ({}, "localhost", False),
        ({}, "::1", False),
        ({}, "0.0.0.0", True),
        ({}, "monitor.example.org", True),
        ({"allow_unauthenticated": True}, "0.0.0.0", False),
        ({"tokens": [{"name": "a", "scopes": ["read"], "sha256": "0" * 64}]}, "0.0.0.0", False),
    ],
)
def test_serving_beyond_loopback_needs_tokens_or_an_explicit_opt_out(auth, host, refused):
    """No token and a host reachable from other machines is refused, unless allowed on purpose."""
    assert bool(unauthenticated_exposure(AuthConfig.model_validate(auth), host)) is refused


def test_check_config_and_serve_refuse_a_public_host_without_tokens(tmp_path, capsys):
    """check-config names the file, line and key; serve --host 0.0.0.0 refuses before starting anything."""
    path = tmp_path / "monitor.yaml"
    path.write_text("server:\n  host: 0.0.0.0\n")
    assert main(["check-config", str(path)]) == 2
    assert f"{path}:2: server.host: 0.0.0.0 is reachable" in capsys.readouterr().err
    path.write_text("server:\n  host: 127.0.0.1\n")
    assert main(["serve", "--config", str(path), "--host", "0.0.0.0"]) == 2
    assert "refusing to serve" in capsys.readouterr().err


def test_hash_token_command_prints_the_hash(monkeypatch, capsys):
    """`otel-monitor hash-token` reads the token on stdin and prints only its hash."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(WRITE_TOKEN + "\n"))
    assert main(["hash-token"]) == 0
    assert capsys.readouterr().out.strip() == hash_token(WRITE_TOKEN)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["hash-token"]) == 2


def _app(status_page: str = "protected") -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/things")
    async def things() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/api/v1/things")
    async def add_thing() -> dict[str, str]:
        return {"ok": "added"}

    @app.get("/api/v1/status")
    async def status() -> dict[str, str]:
        return {"status": "up"}

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    install_auth(app, AuthConfig(tokens=_tokens(), status_page=status_page))  # type: ignore[arg-type]
    return app


@pytest.mark.parametrize(
    "method, path, token, status",
    [
        ("get", "/api/v1/things", None, 401),
        ("get", "/api/v1/things", "nope", 401),
        ("get", "/api/v1/things", READ_TOKEN, 200),
        ("post", "/api/v1/things", READ_TOKEN, 403),
        ("post", "/api/v1/things", WRITE_TOKEN, 200),
        ("post", "/api/v1/things", ADMIN_TOKEN, 200),
        ("get", "/api/v1/status", None, 401),
        ("get", "/livez", None, 200),
        ("get", "/openapi.json", None, 200),
        ("get", "/docs", None, 200),
    ],
)
def test_middleware_answers_by_method_and_token(method, path, token, status):
    """401 JSON with a Bearer challenge without a valid token, 403 JSON naming the scope when it is too low."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = getattr(TestClient(_app()), method)(path, headers=headers)
    assert answer.status_code == status
    if status in (401, 403):
        assert answer.headers["content-type"] == "application/json" and answer.json()["detail"]
        assert (answer.headers.get("www-authenticate", "").startswith("Bearer")) is (status == 401)
        assert token is None or token not in answer.text
    if status == 403:
        assert "needs scope write" in answer.json()["detail"]


def test_public_status_page_is_open():
    """status_page: public opens the status summary to anyone, and only it."""
    client = TestClient(_app("public"))
    assert client.get("/api/v1/status").status_code == 200
    assert client.get("/api/v1/things").status_code == 401


def test_openapi_documents_401_and_403_on_protected_routes_only():
    """Every protected operation lists 401 and 403 with the ApiError body; open ones do not."""
    paths = TestClient(_app()).get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for operation in operations.values():
            assert ({"401", "403"} <= set(operation["responses"])) is (path != "/livez"), (path, operation)


@pytest.mark.parametrize(
    "headers, subprotocols, answered",
    [
        ({"Authorization": f"Bearer {READ_TOKEN}"}, [], None),
        ({}, ["bearer", f"bearer.{READ_TOKEN}"], "bearer"),
    ],
)
def test_websocket_accepts_a_token_in_the_header_or_the_subprotocol(headers, subprotocols, answered):
    """The token comes in the Authorization header, or as the subprotocol bearer.<token>: answered `bearer`."""
    with TestClient(_app()).websocket_connect("/ws", headers=headers, subprotocols=subprotocols) as ws:
        assert ws.receive_text() == "hello"
        assert ws.accepted_subprotocol == answered


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
def test_websocket_without_a_valid_token_is_refused(headers):
    """No token or an unknown one: the handshake is refused."""
    with pytest.raises(WebSocketDisconnect), TestClient(_app()).websocket_connect("/ws", headers=headers):
        pass


def _monitor_app(status_page: str) -> FastAPI:
    """The monitor's own app with a read token and the status page ``status_page`` (alerting off)."""
    tokens = [ApiToken(name="reader", scopes=[Scope.READ], sha256=hash_token("t" * 40))]
    return create_app(MonitorConfig(auth=AuthConfig(tokens=tokens, status_page=status_page)))


@pytest.mark.parametrize(
    "status_page, query, let_in",
    [
        ("public", "?include=status", True),
        ("public", "", False),  # the notifications need a token
        ("protected", "?include=status", False),
    ],
)
def test_public_status_page_script_gets_the_status_messages_without_a_token(status_page, query, let_in):
    """A public status page's script reads its live messages without a token, and only those: no notification;
    with the page protected, or without asking for the status messages alone, the WebSocket needs a token."""
    app = _monitor_app(status_page)
    with TestClient(app) as client:
        if not let_in:
            with pytest.raises(WebSocketDisconnect), client.websocket_connect(f"{ALERTS_WS_PATH}{query}"):
                pass
            return
        with client.websocket_connect(f"{ALERTS_WS_PATH}{query}") as websocket:
            for _ in range(100):  # the subscription is made by the app's task: publish until it is there
                if app.state.status.hub.subscriber_count:
                    break
                time.sleep(0.05)
            marker = {"type": "status", "marker": "published by the test"}
            app.state.status.hub.publish(json.dumps(marker))
            # The page's own live updates may come first: every message is a status message, the marker arrives.
            while (message := websocket.receive_json()) != marker:
                assert message["type"] == "status", message


@pytest.mark.parametrize("status_page, status", [("public", 404), ("protected", 401)])
def test_alert_pages_are_as_open_as_the_status_page(status_page, status):
    """An alert page (where notifications link) is open with a public status page (here 404: alerting is off, no
    alert), and needs a token with a protected one; its acknowledgement (a POST) needs write either way."""
    with TestClient(_monitor_app(status_page)) as client:
        assert client.get("/alerts/0123456789abcdef").status_code == status
        assert client.post("/api/v1/alerts/0123456789abcdef/ack", json={"by": "ana"}).status_code == 401

"""App-wide, default-deny authorization by HTTP method: GET/HEAD need ``read``, any other method ``write``."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otel_monitor.instrument.probe_paths import HEALTH_PATH, LIVENESS_PATH
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.api_errors import ApiError
from otel_monitor.monitor.auth.config import AuthConfig
from otel_monitor.monitor.auth.config import Scope as TokenScope
from otel_monitor.monitor.auth.tokens import Grant, TokenTable, bearer_token

__all__ = [
    "AuthMiddleware",
    "STATUS_PAGE_PATHS",
    "STATUS_PAGE_PREFIXES",
    "open_prefixes",
    "STATUS_ONLY",
    "WEBSOCKET_BEARER_PROTOCOL",
    "document_auth",
    "install_auth",
    "open_paths",
    "required_scope",
]

# The status page and its JSON summary: open when ``auth.status_page`` is public.
STATUS_PAGE_PATHS = ("/", "/api/v1/status")
# ... and the alert pages notifications link to (``/alerts/{fingerprint}``): open with it.
STATUS_PAGE_PREFIXES = ("/alerts/",)
# Set in the scope of a WebSocket let in without a token because it asked only for the public status page's live
# messages (``?include=status`` while ``auth.status_page`` is public): it gets those and no notification.
STATUS_ONLY = "otel_monitor.status_only"
# Browsers cannot set headers on a WebSocket: they offer the subprotocols ``bearer`` and ``bearer.<token>``, and
# the server answers ``bearer`` (never the one holding the token).
WEBSOCKET_BEARER_PROTOCOL = "bearer"
_TOKEN_PROTOCOL_PREFIX = f"{WEBSOCKET_BEARER_PROTOCOL}."
_READ_METHODS = frozenset({"GET", "HEAD"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="otel-monitor"'}
_POLICY_VIOLATION = 1008
_COMPONENTS = "#/components/schemas/"


def required_scope(method: str) -> TokenScope:
    """The scope a request of this HTTP method needs: ``read`` to look, ``write`` for anything else."""
    return TokenScope.READ if method.upper() in _READ_METHODS else TokenScope.WRITE


def open_paths(app: FastAPI, auth: AuthConfig) -> frozenset[str]:
    """The paths anyone may request: the probes, the API's documentation (no data) and, when public, the status
    page."""
    documentation = (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
    status_page = STATUS_PAGE_PATHS if auth.status_page == "public" else ()
    return frozenset(path for path in (HEALTH_PATH, LIVENESS_PATH, *documentation, *status_page) if path)


def open_prefixes(auth: AuthConfig) -> tuple[str, ...]:
    """The path prefixes anyone may request: the alert pages, when the status page is public."""
    return STATUS_PAGE_PREFIXES if auth.status_page == "public" else ()


def _refusal(grant: Grant | None, needed: TokenScope, what: str) -> tuple[int, str] | None:
    """(status, detail) refusing ``what``, or None if the grant covers ``needed``. Never names the token itself."""
    if grant is None:
        return 401, "a valid API token is required (Authorization: Bearer <token>)"
    if not grant.scope.includes(needed):
        return 403, f"token {grant.name!r} has scope {grant.scope.value}; {what} needs scope {needed.value}"
    return None


class AuthMiddleware:
    """Decided by method, never by a list of routes: a route added later is covered as it is. Open: the probes, the
    API's documentation and, when public, the status page. Refuses requests without a token of the scope their
    method needs: 401 (with ``WWW-Authenticate: Bearer``) when the token is missing or unknown, 403 when its scope
    is too low; both ``{"detail": ...}``. A WebSocket needs ``read``; it is refused during the handshake (HTTP
    401/403 where the server supports denial responses, else a close with 1008, policy violation, which the server
    answers as 403)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: TokenTable,
        open_paths: frozenset[str],
        open_prefixes: tuple[str, ...] = (),
        status_websocket_path: str | None = None,
    ) -> None:
        self.app, self.tokens, self.open_paths, self.open_prefixes = app, tokens, open_paths, open_prefixes
        # The WebSocket whose status messages a public status page's script reads without a token (None: none).
        self.status_websocket_path = status_websocket_path
        self._log = StructuredLogger("otel_monitor.monitor.auth")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, headers)
            return
        method = scope["method"]
        needed = required_scope(method)
        refusal = _refusal(self.tokens.grant(bearer_token(headers.get("authorization"))), needed, method)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, detail = refusal
        self._log.info("API request refused", extra={"path": scope["path"], "method": method, "status": status})
        response = JSONResponse({"detail": detail}, status_code=status, headers=_CHALLENGE if status == 401 else None)
        await response(scope, receive, send)

    def is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        token = bearer_token(headers.get("authorization"))
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        from_protocol = token is None and any(p.startswith(_TOKEN_PROTOCOL_PREFIX) for p in offered)
        if from_protocol:
            token = next(p for p in offered if p.startswith(_TOKEN_PROTOCOL_PREFIX))[len(_TOKEN_PROTOCOL_PREFIX) :]
        refusal = _refusal(self.tokens.grant(token), TokenScope.READ, "the WebSocket")
        if refusal is not None and token is None and self._status_only(scope):
            await self.app({**scope, STATUS_ONLY: True}, receive, send)
            return
        if refusal is not None:
            status, detail = refusal
            self._log.info("WebSocket refused", extra={"path": scope["path"], "status": status})
            await _deny_websocket(scope, send, status, detail)
            return
        if not from_protocol:
            await self.app(scope, receive, send)
            return

        async def answer_bearer(message: Message) -> None:
            if message["type"] == "websocket.accept":
                message = {**message, "subprotocol": WEBSOCKET_BEARER_PROTOCOL}
            await send(message)

        # The app sees the offer without the token, as if the client had offered ``bearer`` alone.
        kept = [p for p in offered if not p.startswith(_TOKEN_PROTOCOL_PREFIX)]
        await self.app({**scope, "subprotocols": kept}, receive, answer_bearer)

    def _status_only(self, scope: Scope) -> bool:
        """Whether this WebSocket asks only for the public status page's messages."""
        if scope["path"] != self.status_websocket_path:
            return False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return query.get("include") == ["status"]


async def _deny_websocket(scope: Scope, send: Send, status: int, detail: str) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        response = JSONResponse({"detail": detail}, status_code=status, headers=_CHALLENGE if status == 401 else None)
        # A denial response is an HTTP response sent on the upgrade (ASGI "websocket.http.response" extension).
        await send({"type": "websocket.http.response.start", "status": status, "headers": response.raw_headers})
        await send({"type": "websocket.http.response.body", "body": response.body})
        return
    await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": ""})


def document_auth(app: FastAPI, is_open: Callable[[str], bool]) -> None:
    """Adds the 401 and 403 responses (``ApiError`` bodies) to every operation of the app's OpenAPI document whose
    path is not open, each time the document is served: operations of routes included later are documented too."""
    build = app.openapi
    error_ref = {"$ref": f"{_COMPONENTS}ApiError"}
    refusals = {
        "401": {
            "description": HTTPStatus.UNAUTHORIZED.phrase,
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": error_ref}},
        },
        "403": {"description": HTTPStatus.FORBIDDEN.phrase, "content": {"application/json": {"schema": error_ref}}},
    }

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI's own, cached: the additions below are made once
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ApiError", ApiError.model_json_schema(ref_template=_COMPONENTS + "{model}"))
        for path, operations in document.get("paths", {}).items():
            if not is_open(path):
                for operation in operations.values():
                    for status, response in refusals.items():
                        operation.setdefault("responses", {}).setdefault(status, response)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_auth(app: FastAPI, auth: AuthConfig, *, status_websocket_path: str | None = None) -> bool:
    """Puts the authorization in front of every route of ``app`` when ``auth`` has tokens; returns whether it did
    (no tokens: the API stays open, as before tokens existed, and a WARNING says so). With a public status page,
    ``status_websocket_path`` lets its script in without a token for the status messages alone."""
    if not auth.enabled:
        StructuredLogger("otel_monitor.monitor.auth").warning(
            "No API token is configured (auth.tokens): every route of the API is open to anyone who reaches the port"
        )
        return False
    paths, prefixes = open_paths(app, auth), open_prefixes(auth)
    app.add_middleware(
        AuthMiddleware,
        tokens=TokenTable(auth.tokens),
        open_paths=paths,
        open_prefixes=prefixes,
        status_websocket_path=status_websocket_path if auth.status_page == "public" else None,
    )
    document_auth(app, lambda path: path in paths or path.startswith(prefixes))
    return True

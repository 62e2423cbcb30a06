"""Classifies provider responses and exceptions into call outcomes and provider error codes (pure functions)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otel_monitor.instrument.error_codes import ProviderFailure, provider_error_code
from otel_monitor.instrument.metrics import Outcome

__all__ = ["Classification", "SUCCESS", "MAX_CLASSIFIED_BODY", "classify_response", "classify_exception"]

# Error bodies longer than this are not parsed (a provider's error JSON is a few hundred bytes).
MAX_CLASSIFIED_BODY = 64 * 1024


@dataclass(frozen=True)
class Classification:
    """The outcome of one call and, when it failed, what failed."""

    outcome: str
    failure: ProviderFailure | None = None

    def error_code(self, service: str) -> str | None:
        return provider_error_code(service, self.failure) if self.failure else None

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.ERROR, Outcome.TIMEOUT)


SUCCESS = Classification(Outcome.SUCCESS)
_TIMEOUT = Classification(Outcome.TIMEOUT, ProviderFailure.TIMEOUT)


def _error(failure: ProviderFailure) -> Classification:
    return Classification(Outcome.ERROR, failure)


def _parse(body: bytes | str | Mapping | None) -> Mapping:
    if isinstance(body, Mapping):
        return body
    if not body or len(body) > MAX_CLASSIFIED_BODY:
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, Mapping) else {}


def _items(value: object) -> list[Any]:
    """A JSON list as a list; anything else (a malformed body) as empty."""
    return value if isinstance(value, list) else []


def _google_error(body: Mapping) -> tuple[str, set[str], list[str]]:
    """(status, reasons, quota ids) of a Google API error body (Gemini, YouTube); tolerant of malformed bodies."""
    error = body.get("error")
    if not isinstance(error, Mapping):
        # OAuth token endpoint: {"error": "invalid_grant", ...}
        return (str(error or ""), {str(error)} if isinstance(error, str) and error else set(), [])
    reasons: set[str] = set()
    quota_ids: list[str] = []
    for item in _items(error.get("errors")):
        if isinstance(item, Mapping) and item.get("reason"):
            reasons.add(str(item["reason"]))
    for detail in _items(error.get("details")):
        if not isinstance(detail, Mapping):
            continue
        if detail.get("reason"):
            reasons.add(str(detail["reason"]))
        for violation in _items(detail.get("violations")):
            if isinstance(violation, Mapping) and violation.get("quotaId"):
                quota_ids.append(str(violation["quotaId"]))
    return (str(error.get("status") or ""), reasons, quota_ids)


_INVALID_CREDENTIAL_REASONS = {
    "API_KEY_INVALID",
    "authError",
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "API_KEY_SERVICE_BLOCKED",
    "CONSUMER_INVALID",
}
_QUOTA_REASONS = {
    "quotaExceeded",
    "dailyLimitExceeded",
    "insufficient_balance",
    "payment_required",
    "InsufficientCreditsError",
}
_RATE_REASONS = {
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "rate_limit_exceeded",
    "TooManyRequestsError",
    "RATE_LIMIT_EXCEEDED",
}


def classify_response(service: str, status_code: int, body: bytes | str | Mapping | None = None) -> Classification:
    """Outcome and failure of a provider's HTTP answer, reading the provider's own error body."""
    if 200 <= status_code < 400:
        return SUCCESS
    parsed = _parse(body)
    status, reasons, quota_ids = _google_error(parsed)
    # Stability: {"name": "unauthorized", ...}; D-ID: {"kind": "AuthorizationError", ...}
    for key in ("name", "kind"):
        if isinstance(parsed.get(key), str):
            reasons.add(parsed[key])
    if (
        reasons & _INVALID_CREDENTIAL_REASONS
        or parsed.get("kind") == "AuthorizationError"
        or parsed.get("name") == "unauthorized"
    ):
        return _error(ProviderFailure.INVALID_API_KEY)
    if reasons & _QUOTA_REASONS or status_code == 402:
        return _error(ProviderFailure.QUOTA_EXCEEDED)
    if reasons & _RATE_REASONS:
        return _error(ProviderFailure.RATE_LIMITED)
    if status_code == 429 or status == "RESOURCE_EXHAUSTED":
        # A per-minute quota is a throttle that passes; anything else (per day, credits) is exhaustion.
        if quota_ids and all("PerMinute" in q or "PerSecond" in q for q in quota_ids):
            return _error(ProviderFailure.RATE_LIMITED)
        return _error(ProviderFailure.QUOTA_EXCEEDED)
    if status_code in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return _error(ProviderFailure.INVALID_API_KEY)
    if status_code in (408, 504) or status == "DEADLINE_EXCEEDED":
        return _TIMEOUT
    if status_code >= 500:
        return _error(ProviderFailure.SERVER_ERROR)
    return _error(ProviderFailure.BAD_REQUEST)


# Connection failures by class name: httpx and httpx2 (ConnectError, NetworkError, RemoteProtocolError) and
# requests (its ConnectionError is an OSError, not the builtin ConnectionError).
_CONNECTION_ERRORS = frozenset({"ConnectError", "NetworkError", "RemoteProtocolError", "ConnectionError"})


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return True
    return any("Timeout" in cls.__name__ for cls in type(exc).__mro__)


def classify_exception(service: str, exc: BaseException) -> Classification:
    """Outcome and failure of a call that raised: timeouts, connection errors, HTTP errors of any client.

    A call cancelled from outside (``asyncio.wait_for`` running out, a client gone) is a timeout: it did not
    succeed, whatever the provider would have answered.
    """
    if isinstance(exc, asyncio.CancelledError):
        return _TIMEOUT
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: the call did not complete
        return _error(ProviderFailure.UNKNOWN_ERROR)
    # httpx/httpx2 HTTPStatusError, requests' HTTPError, google-genai's APIError: the answer with its error body
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "status_code"):
        try:
            content = response.content
        except Exception:  # a streamed body that was never read
            content = None
        return classify_response(service, response.status_code, content)
    resp = getattr(exc, "resp", None)  # googleapiclient.errors.HttpError
    if resp is not None and hasattr(resp, "status"):
        return classify_response(service, int(resp.status), getattr(exc, "content", None))
    if type(exc).__name__ == "RefreshError":  # google.auth: the token endpoint refused or failed
        text = " ".join(str(a) for a in exc.args)
        if any(reason in text for reason in ("invalid_grant", "invalid_client", "unauthorized_client")):
            return _error(ProviderFailure.INVALID_API_KEY)
        return _error(ProviderFailure.TOKEN_REFRESH_FAILED)
    if _is_timeout(exc):
        return _TIMEOUT
    if isinstance(exc, ConnectionError) or any(cls.__name__ in _CONNECTION_ERRORS for cls in type(exc).__mro__):
        return _error(ProviderFailure.CONNECTION_FAILED)
    return _error(ProviderFailure.UNKNOWN_ERROR)

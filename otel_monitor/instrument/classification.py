"""Classifies provider responses and exceptions into call outcomes and provider error codes (pure functions)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from otel_monitor.instrument.error_codes import ProviderFailure, provider_error_code
from otel_monitor.instrument.metrics import Outcome

__all__ = [
    "Classification",
    "ProviderLimit",
    "SUCCESS",
    "MAX_CLASSIFIED_BODY",
    "STABILITY_LOCKOUT_SECONDS",
    "GOOGLE_DAILY_RESET",
    "classify_response",
    "classify_exception",
    "seconds_until_clear",
]

# Error bodies longer than this are not parsed (a provider's error JSON is a few hundred bytes).
MAX_CLASSIFIED_BODY = 64 * 1024


# Stability AI times a client out for 60 seconds once it passes 150 requests in 10 seconds (its 429).
STABILITY_LOCKOUT_SECONDS = 60.0
# Google's per-day quotas (Gemini requests per day, YouTube units) reset at midnight Pacific time.
GOOGLE_DAILY_RESET = "00:00 Pacific"
_PACIFIC = ZoneInfo("America/Los_Angeles")


@dataclass(frozen=True)
class ProviderLimit:
    """The limit a provider's refusal names and when it clears: ``per-minute tokens of gemini-2.0-flash: retry
    in 46 s``, ``requests per day of gemini-2.0-flash: resets at 00:00 Pacific``."""

    name: str  # "per-minute tokens", "requests per day", "uploads per day of the channel"
    per_day: bool  # exhausted until a daily reset (not a throttle that passes within the minute)
    model: str | None = None
    quota_id: str | None = None  # Google's QuotaFailure quotaId, e.g. GenerateRequestsPerMinutePerProjectPerModel
    quota_metric: str | None = None
    retry_after_seconds: float | None = None  # the provider's RetryInfo or documented lockout
    resets_at: str | None = None  # a daily reset, e.g. "00:00 Pacific"

    @property
    def clears(self) -> str:
        if self.per_day and self.resets_at:
            return f"resets at {self.resets_at}"
        if self.retry_after_seconds is not None:
            return f"retry in {math.ceil(self.retry_after_seconds)} s"
        return "clears by itself"

    @property
    def description(self) -> str:
        named = f"{self.name} of {self.model}" if self.model else self.name
        return f"{named}: {self.clears}"


@dataclass(frozen=True)
class Classification:
    """The outcome of one call and, when it failed, what failed (and which provider limit, when one is named)."""

    outcome: str
    failure: ProviderFailure | None = None
    limit: ProviderLimit | None = field(default=None, compare=False)

    def error_code(self, service: str) -> str | None:
        return provider_error_code(service, self.failure) if self.failure else None

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.ERROR, Outcome.TIMEOUT)


SUCCESS = Classification(Outcome.SUCCESS)
_TIMEOUT = Classification(Outcome.TIMEOUT, ProviderFailure.TIMEOUT)


def _error(failure: ProviderFailure, limit: ProviderLimit | None = None) -> Classification:
    return Classification(Outcome.ERROR, failure, limit)


def seconds_until_clear(limit: ProviderLimit, now: dt.datetime) -> float | None:
    """Seconds from ``now`` (aware) until ``limit`` clears: the provider's retry delay, or until the next Pacific
    midnight for a Google daily quota; None when unknown (a rolling window)."""
    if limit.per_day and limit.resets_at == GOOGLE_DAILY_RESET:
        local = now.astimezone(_PACIFIC)
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), _PACIFIC)
        return (midnight.astimezone(dt.UTC) - now.astimezone(dt.UTC)).total_seconds()
    return limit.retry_after_seconds


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


@dataclass(frozen=True)
class _GoogleError:
    """What a Google API error body says (Gemini, YouTube); empty for other bodies."""

    status: str = ""
    reasons: frozenset[str] = frozenset()
    violations: tuple[Mapping, ...] = ()  # google.rpc.QuotaFailure violations
    retry_delay: str | None = None  # google.rpc.RetryInfo retryDelay, e.g. "46s" or "45.8379s"

    @property
    def quota_ids(self) -> list[str]:
        return [str(v["quotaId"]) for v in self.violations if v.get("quotaId")]


def _google_error(body: Mapping) -> _GoogleError:
    """The status, reasons, quota violations and retry delay of a Google API error body; tolerant of malformed
    bodies."""
    error = body.get("error")
    if not isinstance(error, Mapping):
        # OAuth token endpoint: {"error": "invalid_grant", ...}
        return _GoogleError(str(error or ""), frozenset({error}) if isinstance(error, str) and error else frozenset())
    reasons: set[str] = set()
    violations: list[Mapping] = []
    retry_delay: str | None = None
    for item in _items(error.get("errors")):
        if isinstance(item, Mapping) and item.get("reason"):
            reasons.add(str(item["reason"]))
    for detail in _items(error.get("details")):
        if not isinstance(detail, Mapping):
            continue
        if detail.get("reason"):
            reasons.add(str(detail["reason"]))
        if isinstance(detail.get("retryDelay"), str):
            retry_delay = detail["retryDelay"]
        violations.extend(v for v in _items(detail.get("violations")) if isinstance(v, Mapping))
    return _GoogleError(str(error.get("status") or ""), frozenset(reasons), tuple(violations), retry_delay)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _seconds(duration: str | None) -> float | None:
    """A protobuf JSON duration ("46s", "45.837906927s") in seconds; None when absent or malformed."""
    match = _DURATION.match(duration) if duration else None
    return float(match.group(1)) if match else None


def _is_throttle(quota_id: str) -> bool:
    """A per-minute (or per-second) quota: a throttle that passes, not an exhausted allowance."""
    return "PerMinute" in quota_id or "PerSecond" in quota_id


def _quota_limit(violation: Mapping, retry_delay: str | None) -> ProviderLimit:
    """The limit one QuotaFailure violation names: ``GenerateContentInputTokensPerModelPerMinute`` is per-minute
    input tokens, ``GenerateRequestsPerDayPerProjectPerModel-FreeTier`` requests per day."""
    quota_id = str(violation.get("quotaId") or "")
    metric = str(violation.get("quotaMetric") or "")
    dimensions = violation.get("quotaDimensions")
    model = dimensions.get("model") if isinstance(dimensions, Mapping) else None
    if "InputToken" in quota_id or "input_token" in metric:
        what = "input tokens"
    elif "OutputToken" in quota_id or "output_token" in metric:
        what = "output tokens"
    elif "Token" in quota_id or "token" in metric:
        what = "tokens"
    else:
        what = "requests"
    if "PerDay" in quota_id:
        name, per_day = f"{what} per day", True
    elif "PerSecond" in quota_id:
        name, per_day = f"per-second {what}", False
    elif "PerMinute" in quota_id:
        name, per_day = f"per-minute {what}", False
    else:
        name, per_day = what, True
    return ProviderLimit(
        name=name,
        per_day=per_day,
        model=str(model) if model else None,
        quota_id=quota_id or None,
        quota_metric=metric or None,
        retry_after_seconds=_seconds(retry_delay),
        resets_at=GOOGLE_DAILY_RESET if per_day else None,
    )


def _named_limit(google: _GoogleError) -> ProviderLimit | None:
    """The limit a 429 names: an exhausted per-day quota first (it outlasts any throttle), else the first
    per-minute one; a RetryInfo alone is an unnamed throttle."""
    violations = [v for v in google.violations if v.get("quotaId")]
    daily = [v for v in violations if not _is_throttle(str(v["quotaId"]))]
    if daily or violations:
        return _quota_limit((daily or violations)[0], google.retry_delay)
    if google.retry_delay is not None:
        return ProviderLimit("request rate", per_day=False, retry_after_seconds=_seconds(google.retry_delay))
    return None


_UPLOAD_LIMIT = ProviderLimit("uploads per day of the channel", per_day=True, resets_at="a rolling 24 hours")
_STABILITY_LOCKOUT = ProviderLimit(
    "request rate (150 requests in 10 s)", per_day=False, retry_after_seconds=STABILITY_LOCKOUT_SECONDS
)


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
    google = _google_error(parsed)
    status, reasons, quota_ids = google.status, set(google.reasons), google.quota_ids
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
    if "uploadLimitExceeded" in reasons:  # YouTube: the channel's daily upload cap, whatever units are left
        return _error(ProviderFailure.UPLOAD_LIMIT_EXCEEDED, _UPLOAD_LIMIT)
    if service == "stability" and status_code == 429:  # Stability's 429 is its 60-second lockout
        return _error(ProviderFailure.RATE_LIMITED, _STABILITY_LOCKOUT)
    limit = _named_limit(google) if status_code == 429 or status == "RESOURCE_EXHAUSTED" else None
    if reasons & _QUOTA_REASONS or status_code == 402:
        return _error(ProviderFailure.QUOTA_EXCEEDED, limit)
    if reasons & _RATE_REASONS:
        # Google says rateLimitExceeded of a per-day quota too: its QuotaFailure tells exhaustion from a throttle
        exhausted = limit is not None and limit.per_day and limit.quota_id is not None
        return _error(ProviderFailure.QUOTA_EXCEEDED if exhausted else ProviderFailure.RATE_LIMITED, limit)
    if status_code == 429 or status == "RESOURCE_EXHAUSTED":
        # A per-minute quota is a throttle that passes; anything else (per day, credits) is exhaustion.
        if quota_ids and all(_is_throttle(q) for q in quota_ids):
            return _error(ProviderFailure.RATE_LIMITED, limit)
        return _error(ProviderFailure.QUOTA_EXCEEDED, limit)
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

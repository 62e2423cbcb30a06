"""Provider responses and exceptions map to the required outcomes and error codes."""

import json

import httpx
import pytest

from otel_monitor.instrument.classification import classify_exception, classify_response
from otel_monitor.instrument.metrics import Outcome


def _google(code, status, message="", reason=None, details=()):
    error = {"code": code, "message": message, "status": status, "details": list(details)}
    if reason:
        error["errors"] = [{"reason": reason, "domain": "youtube.quota" if "uota" in reason else "global"}]
    return json.dumps({"error": error})


GEMINI_BAD_KEY = _google(
    400,
    "INVALID_ARGUMENT",
    "API key not valid.",
    details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
    ],
)
GEMINI_PER_DAY = _google(
    429,
    "RESOURCE_EXHAUSTED",
    details=[
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
        }
    ],
)
GEMINI_PER_MINUTE = _google(
    429,
    "RESOURCE_EXHAUSTED",
    details=[
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
        }
    ],
)


@pytest.mark.parametrize(
    "service,status,body,outcome,code",
    [
        ("gemini", 200, "{}", Outcome.SUCCESS, None),
        ("gemini", 400, GEMINI_BAD_KEY, Outcome.ERROR, "GEMINI_INVALID_API_KEY"),
        ("gemini", 403, _google(403, "PERMISSION_DENIED"), Outcome.ERROR, "GEMINI_INVALID_API_KEY"),
        ("gemini", 429, GEMINI_PER_DAY, Outcome.ERROR, "GEMINI_QUOTA_EXCEEDED"),
        ("gemini", 429, GEMINI_PER_MINUTE, Outcome.ERROR, "GEMINI_RATE_LIMITED"),
        ("gemini", 503, _google(503, "UNAVAILABLE"), Outcome.ERROR, "GEMINI_SERVER_ERROR"),
        ("gemini", 504, _google(504, "DEADLINE_EXCEEDED"), Outcome.TIMEOUT, "GEMINI_TIMEOUT"),
        ("gemini", 400, _google(400, "INVALID_ARGUMENT", "bad prompt"), Outcome.ERROR, "GEMINI_BAD_REQUEST"),
        (
            "stability",
            401,
            '{"id":"1","name":"unauthorized","message":"missing key"}',
            Outcome.ERROR,
            "STABILITY_INVALID_API_KEY",
        ),
        (
            "stability",
            402,
            '{"id":"1","name":"payment_required","message":"no credits"}',
            Outcome.ERROR,
            "STABILITY_QUOTA_EXCEEDED",
        ),
        (
            "stability",
            429,
            '{"id":"1","name":"rate_limit_exceeded","message":"150 in 10 s"}',
            Outcome.ERROR,
            "STABILITY_RATE_LIMITED",
        ),
        ("stability", 500, '{"id":"1","name":"internal_error","message":"x"}', Outcome.ERROR, "STABILITY_SERVER_ERROR"),
        (
            "d-id",
            401,
            '{"kind":"AuthorizationError","description":"Unauthorized"}',
            Outcome.ERROR,
            "D_ID_INVALID_API_KEY",
        ),
        (
            "d-id",
            402,
            '{"kind":"InsufficientCreditsError","description":"not enough credits"}',
            Outcome.ERROR,
            "D_ID_QUOTA_EXCEEDED",
        ),
        ("d-id", 429, '{"kind":"TooManyRequestsError","description":"slow down"}', Outcome.ERROR, "D_ID_RATE_LIMITED"),
        ("youtube", 401, _google(401, "UNAUTHENTICATED", reason="authError"), Outcome.ERROR, "YOUTUBE_INVALID_API_KEY"),
        ("youtube", 403, _google(403, "", reason="quotaExceeded"), Outcome.ERROR, "YOUTUBE_QUOTA_EXCEEDED"),
        (
            "youtube",
            400,
            '{"error":"invalid_grant","error_description":"Token has been expired or revoked."}',
            Outcome.ERROR,
            "YOUTUBE_INVALID_API_KEY",
        ),
        ("youtube", 429, "not json", Outcome.ERROR, "YOUTUBE_QUOTA_EXCEEDED"),
    ],
)
def test_classify_response(service, status, body, outcome, code):
    """Each provider's real error body maps to its spec error code."""
    result = classify_response(service, status, body.encode())
    assert (result.outcome, result.error_code(service)) == (outcome, code)


class RefreshError(Exception):
    """Same name as google.auth.exceptions.RefreshError, which is matched by name."""


def _status_error(status, body):
    request = httpx.Request("POST", "https://api.d-id.com/talks")
    response = httpx.Response(status, content=body, request=request)
    return httpx.HTTPStatusError("boom", request=request, response=response)


@pytest.mark.parametrize(
    "exc,outcome,code",
    [
        (httpx.ReadTimeout("timed out"), Outcome.TIMEOUT, "D_ID_TIMEOUT"),
        (httpx.ConnectTimeout("timed out"), Outcome.TIMEOUT, "D_ID_TIMEOUT"),
        (TimeoutError(), Outcome.TIMEOUT, "D_ID_TIMEOUT"),
        (httpx.ConnectError("refused"), Outcome.ERROR, "D_ID_CONNECTION_FAILED"),
        (ConnectionRefusedError(), Outcome.ERROR, "D_ID_CONNECTION_FAILED"),
        (_status_error(401, b'{"kind":"AuthorizationError"}'), Outcome.ERROR, "D_ID_INVALID_API_KEY"),
        (RefreshError("invalid_grant: Token has been expired or revoked."), Outcome.ERROR, "D_ID_INVALID_API_KEY"),
        (RefreshError("500 backend error"), Outcome.ERROR, "D_ID_TOKEN_REFRESH_FAILED"),
        (ValueError("bad"), Outcome.ERROR, "D_ID_UNKNOWN_ERROR"),
    ],
)
def test_classify_exception(exc, outcome, code):
    """Timeouts, connection errors and HTTP errors raised by clients are classified."""
    result = classify_exception("d-id", exc)
    assert (result.outcome, result.error_code("d-id")) == (outcome, code)

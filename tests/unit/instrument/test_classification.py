"""Provider responses and exceptions map to the required outcomes and error codes."""

import datetime as dt
import json

import httpx
import pytest

from otel_monitor.instrument.classification import (
    ProviderLimit,
    classify_exception,
    classify_response,
    seconds_until_clear,
)
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


def _gemini_429(*violations, retry_delay=None):
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": list(violations)},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
    ]
    if retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return _google(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota", details=details)


def _violation(quota_id, metric, model="gemini-2.0-flash"):
    return {
        "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": model},
    }


TOKENS_PER_MINUTE = _violation(
    "GenerateContentInputTokensPerModelPerMinute", "generate_content_paid_tier_input_token_count"
)
REQUESTS_PER_MINUTE = _violation(
    "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "generate_content_free_tier_requests"
)
REQUESTS_PER_DAY = _violation(
    "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "generate_content_free_tier_requests"
)


@pytest.mark.parametrize(
    "service,status,body,code,description,retry_after",
    [
        (
            "gemini",
            429,
            _gemini_429(TOKENS_PER_MINUTE, retry_delay="45.837906927s"),
            "GEMINI_RATE_LIMITED",
            "per-minute input tokens of gemini-2.0-flash: retry in 46 s",
            45.837906927,
        ),
        (
            "gemini",
            429,
            _gemini_429(REQUESTS_PER_MINUTE, retry_delay="46s"),
            "GEMINI_RATE_LIMITED",
            "per-minute requests of gemini-2.0-flash: retry in 46 s",
            46.0,
        ),
        # per day and per minute at once: the day outlasts the minute, whatever RetryInfo says
        (
            "gemini",
            429,
            _gemini_429(REQUESTS_PER_MINUTE, REQUESTS_PER_DAY, retry_delay="47s"),
            "GEMINI_QUOTA_EXCEEDED",
            "requests per day of gemini-2.0-flash: resets at 00:00 Pacific",
            47.0,
        ),
        (
            "gemini",
            429,
            _gemini_429(REQUESTS_PER_DAY),
            "GEMINI_QUOTA_EXCEEDED",
            "requests per day of gemini-2.0-flash: resets at 00:00 Pacific",
            None,
        ),
        # Google's rateLimitExceeded reason on a per-day quota is still the day's exhaustion
        (
            "gemini",
            429,
            json.dumps(
                {
                    "error": {
                        "code": 429,
                        "status": "RESOURCE_EXHAUSTED",
                        "errors": [{"reason": "rateLimitExceeded"}],
                        "details": json.loads(_gemini_429(REQUESTS_PER_DAY))["error"]["details"],
                    }
                }
            ),
            "GEMINI_QUOTA_EXCEEDED",
            "requests per day of gemini-2.0-flash: resets at 00:00 Pacific",
            None,
        ),
        (
            "gemini",
            429,
            _google(429, "RESOURCE_EXHAUSTED", details=[{"@type": "google.rpc.RetryInfo", "retryDelay": "9s"}]),
            "GEMINI_QUOTA_EXCEEDED",
            "request rate: retry in 9 s",
            9.0,
        ),
        (
            "stability",
            429,
            '{"id":"1","name":"rate_limit_exceeded","errors":["You have exceeded the rate limit"]}',
            "STABILITY_RATE_LIMITED",
            "request rate (150 requests in 10 s): retry in 60 s",
            60.0,
        ),
        ("stability", 429, "", "STABILITY_RATE_LIMITED", "request rate (150 requests in 10 s): retry in 60 s", 60.0),
        (
            "youtube",
            400,
            _google(
                400, "", "The user has exceeded the number of videos they may upload.", reason="uploadLimitExceeded"
            ),
            "YOUTUBE_UPLOAD_LIMIT_EXCEEDED",
            "uploads per day of the channel: resets at a rolling 24 hours",
            None,
        ),
    ],
)
def test_refusal_names_its_limit(service, status, body, code, description, retry_after):
    """A refusal that names a limit (Gemini's QuotaFailure and RetryInfo, Stability's lockout, YouTube's upload
    cap) is classified by it, and says which limit and when it clears."""
    result = classify_response(service, status, body.encode())
    assert result.error_code(service) == code
    assert result.limit is not None
    assert (result.limit.description, result.limit.retry_after_seconds) == (description, retry_after)


@pytest.mark.parametrize(
    "service,status,body,description",
    [
        ("gemini", 503, _google(503, "UNAVAILABLE"), None),
        ("youtube", 403, _google(403, "", reason="quotaExceeded"), None),
        ("d-id", 429, '{"kind":"TooManyRequestsError","description":"slow down"}', None),
        # a violation without quotaId and a retryDelay that is no duration: a throttle, when it clears unknown
        ("gemini", 429, _gemini_429({"quotaId": None}, retry_delay="soon"), "request rate: clears by itself"),
    ],
)
def test_refusal_without_named_limit(service, status, body, description):
    """Errors that name no limit carry none, and a malformed one invents no delay."""
    limit = classify_response(service, status, body.encode()).limit
    assert (limit.description if limit else None) == description


@pytest.mark.parametrize(
    "now,expected",
    [
        (dt.datetime(2026, 1, 15, 7, 59, 0, tzinfo=dt.UTC), 60.0),  # 23:59 PST
        (dt.datetime(2026, 7, 15, 6, 0, 0, tzinfo=dt.UTC), 3600.0),  # 23:00 PDT
        (dt.datetime(2026, 7, 15, 7, 0, 0, tzinfo=dt.UTC), 86400.0),  # 00:00 PDT: the day just reset
        (dt.datetime(2026, 3, 8, 8, 30, 0, tzinfo=dt.UTC), 22.5 * 3600),  # 00:30 PST of a 23-hour day (DST starts)
    ],
)
def test_google_daily_quota_clears_at_pacific_midnight(now, expected):
    """A per-day Google quota clears at the next midnight in Pacific time, daylight saving time included."""
    limit = ProviderLimit("requests per day", per_day=True, resets_at="00:00 Pacific")
    assert seconds_until_clear(limit, now) == expected


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

"""Fake Gemini (Generative Language API) generateContent server speaking Google's JSON and error formats."""

from __future__ import annotations

import json
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultState, fault_mode_of, install_faults

__all__ = ["create_gemini_app"]

SERVICE = "generativelanguage.googleapis.com"
RATE_LIMITS_DOC = "https://ai.google.dev/gemini-api/docs/rate-limits"
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
MISSING_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    f"For more information on this error, head to: {RATE_LIMITS_DOC}."
)
# Fault mode -> the QuotaFailure violation Google names (quotaId, quotaMetric, quotaValue) and RetryInfo's delay.
QUOTA_VIOLATIONS = {
    "quota": ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "generate_content_free_tier_requests", "200", "42s"),
    "rate_limit": (
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "generate_content_free_tier_requests",
        "15",
        "46s",
    ),
    "token_rate_limit": (
        "GenerateContentInputTokensPerModelPerMinute",
        "generate_content_paid_tier_input_token_count",
        "4000000",
        "46.837906927s",
    ),
}


def _google_error(code: int, status: str, message: str, details: list | None = None) -> JSONResponse:
    error: dict = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code)


def _invalid_key(echoed: str | None = None) -> JSONResponse:
    message = INVALID_KEY_MESSAGE if echoed is None else f"API key not valid: {echoed}. Please pass a valid API key."
    return _google_error(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": SERVICE},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ],
    )


def _quota_exceeded(mode: str, model: str) -> JSONResponse:
    """Google's 429: the message names the metric, limit and model, and the details carry the same as a
    QuotaFailure violation and a RetryInfo delay."""
    quota_id, metric, value, retry_delay = QUOTA_VIOLATIONS[mode]
    message = (
        f"{QUOTA_MESSAGE}\n* Quota exceeded for metric: {SERVICE}/{metric}, limit: {value}, model: {model}\n"
        f"Please retry in {retry_delay}."
    )
    return _google_error(
        429,
        "RESOURCE_EXHAUSTED",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": f"{SERVICE}/{metric}",
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": value,
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_DOC}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
        ],
    )


def _count_tokens(texts: list[str]) -> int:
    """A rough stand-in for the tokenizer: about four characters per token, at least one per part."""
    return sum(max(1, len(text) // 4) for text in texts)


def _prompt_texts(body: dict) -> list[str]:
    return [
        part["text"]
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]


def _thinks(model: str) -> bool:
    """Gemini 2.5 models think before answering (and bill the thoughts as output tokens); earlier ones do not."""
    return "-2.5-" in model


def _generated(model: str, prompt_texts: list[str]) -> dict:
    prompt = " ".join(prompt_texts)
    reply = f"Fake reply from {model} to: {prompt[:200]}"
    prompt_tokens, reply_tokens = _count_tokens(prompt_texts), _count_tokens([reply])
    usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": reply_tokens}
    if _thinks(model):  # the thinking varies with the prompt and the model, as a real model's does
        usage["thoughtsTokenCount"] = 3 * prompt_tokens + len(model)
    usage["totalTokenCount"] = sum(usage.values())
    return {
        "candidates": [{"content": {"parts": [{"text": reply}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": secrets.token_urlsafe(16),
    }


def create_gemini_app(expected_key: str, faults: FaultState | None = None) -> FastAPI:
    """The fake Gemini API; accepts ``expected_key`` as ``?key=`` or the ``x-goog-api-key`` header."""
    faults = faults or FaultState()
    app = FastAPI(title="fake gemini", openapi_url=None, docs_url=None, redoc_url=None)
    install_faults(app, faults)

    async def generate_content(model: str, request: Request) -> JSONResponse:
        key = request.query_params.get("key") or request.headers.get("x-goog-api-key")
        mode = fault_mode_of(request)
        if not key:
            return _google_error(403, "PERMISSION_DENIED", MISSING_KEY_MESSAGE)
        if key != expected_key or mode in ("invalid_key", "echo_key"):
            return _invalid_key(key if mode == "echo_key" else None)
        if mode in QUOTA_VIOLATIONS:
            return _quota_exceeded(mode, model)
        if mode == "server_error":
            return _google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(body, dict) or not body.get("contents"):
            return _google_error(
                400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n"
            )
        return JSONResponse(_generated(model, _prompt_texts(body)))

    for version in ("v1beta", "v1"):
        app.add_api_route(f"/{version}/models/{{model}}:generateContent", generate_content, methods=["POST"])
    return app

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
QUOTA_IDS = {
    "quota": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
    "rate_limit": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
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
    return _google_error(
        429,
        "RESOURCE_EXHAUSTED",
        QUOTA_MESSAGE,
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": f"{SERVICE}/generate_content_free_tier_requests",
                        "quotaId": QUOTA_IDS[mode],
                        "quotaDimensions": {"location": "global", "model": model},
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_DOC}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "42s"},
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


def _generated(model: str, prompt_texts: list[str]) -> dict:
    prompt = " ".join(prompt_texts)
    reply = f"Fake reply from {model} to: {prompt[:200]}"
    prompt_tokens, reply_tokens = _count_tokens(prompt_texts), _count_tokens([reply])
    return {
        "candidates": [{"content": {"parts": [{"text": reply}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": reply_tokens,
            "totalTokenCount": prompt_tokens + reply_tokens,
        },
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
        if mode in QUOTA_IDS:
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

"""GenAI semantic conventions on Gemini calls: the operation and model from the URL, tokens from ``usageMetadata``.

Attributes and metrics follow the development GenAI conventions (``gen_ai.*``, constants from
opentelemetry-semantic-conventions). By default a Gemini call gets the ``gen_ai.*`` span attributes (tokens
included) and the ``gen_ai.client.token.usage`` histogram: new names, added to what the call already carries. What
would change or duplicate our own names waits for the conventions' opt-in
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``: the span renamed ``{operation} {model}`` (dashboards and
queries find it by its name) and ``gen_ai.client.operation.duration`` (the same measurement as
``external_api.call.duration``, which every call records).

Only counts and model names are read from a response: prompts and outputs are never parsed or recorded.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    GenAiOperationNameValues,
    GenAiProviderNameValues,
    GenAiTokenTypeValues,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.util.types import AttributeValue

__all__ = [
    "GEN_AI_OPT_IN",
    "GenAiRequest",
    "TokenUsage",
    "gen_ai_latest_experimental",
    "gemini_request",
    "gen_ai_request",
    "gemini_usage",
    "usage_attributes",
]

# The value of OTEL_SEMCONV_STABILITY_OPT_IN (comma-separated) that opts into the latest GenAI conventions.
GEN_AI_OPT_IN = "gen_ai_latest_experimental"
_OPT_IN_VARIABLE = "OTEL_SEMCONV_STABILITY_OPT_IN"

# Gemini API methods (``/v1beta/models/{model}:{method}``) that are GenAI operations, by the conventions' names.
_GEMINI_OPERATIONS = {
    "generateContent": GenAiOperationNameValues.GENERATE_CONTENT.value,
    "streamGenerateContent": GenAiOperationNameValues.GENERATE_CONTENT.value,
    "embedContent": GenAiOperationNameValues.EMBEDDINGS.value,
    "batchEmbedContents": GenAiOperationNameValues.EMBEDDINGS.value,
}
_STREAMED_METHODS = frozenset({"streamGenerateContent"})
_MODEL_METHOD = re.compile(r"/(?:models|tunedModels)/([^/:]+):([A-Za-z]+)$")
_USAGE_KEY = b'"usageMetadata"'
_MODEL_VERSION_KEY = b'"modelVersion"'
_decoder = json.JSONDecoder()


def gen_ai_latest_experimental() -> bool:
    """Whether the process opted into the latest GenAI conventions (read when a recorder is created)."""
    return GEN_AI_OPT_IN in (part.strip() for part in os.environ.get(_OPT_IN_VARIABLE, "").split(","))


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one response: output includes the thinking tokens (Gemini bills them as output), also given
    apart as ``reasoning``."""

    input: int
    output: int
    reasoning: int = 0
    response_model: str | None = None

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input + other.input,
            self.output + other.output,
            self.reasoning + other.reasoning,
            other.response_model or self.response_model,
        )


@dataclass(frozen=True)
class GenAiRequest:
    """One request that is a GenAI operation: what the conventions name it by, read from its URL."""

    operation: str
    model: str
    streamed: bool
    server_address: str
    server_port: int | None

    @property
    def span_name(self) -> str:
        return f"{self.operation} {self.model}"

    @functools.cached_property
    def metric_attributes(self) -> dict[str, AttributeValue]:
        """The attributes of both metrics: the conventions' required ones only (each one costs on every record,
        and server.address is only recommended); not to be changed by the caller."""
        return {
            GEN_AI_OPERATION_NAME: self.operation,
            GEN_AI_PROVIDER_NAME: GenAiProviderNameValues.GCP_GEMINI.value,
            GEN_AI_REQUEST_MODEL: self.model,
        }

    @functools.cached_property
    def input_token_attributes(self) -> dict[str, AttributeValue]:
        """The token usage histogram's attributes of input tokens (built once per request: the calls of a model
        share them); not to be changed by the caller."""
        return {**self.metric_attributes, GEN_AI_TOKEN_TYPE: GenAiTokenTypeValues.INPUT.value}

    @functools.cached_property
    def output_token_attributes(self) -> dict[str, AttributeValue]:
        """The token usage histogram's attributes of output tokens; not to be changed by the caller."""
        return {**self.metric_attributes, GEN_AI_TOKEN_TYPE: GenAiTokenTypeValues.OUTPUT.value}

    @functools.cached_property
    def span_attributes(self) -> dict[str, AttributeValue]:
        """The request's attributes on its span: the metrics' and the server's address and port."""
        attributes: dict[str, AttributeValue] = {**self.metric_attributes, SERVER_ADDRESS: self.server_address}
        if self.server_port is not None:
            attributes[SERVER_PORT] = self.server_port
        return attributes


@functools.lru_cache(maxsize=256)  # a backend calls a few models on one host: the same few requests
def gemini_request(host: str, port: int | None, path: str) -> GenAiRequest | None:
    """The GenAI operation of a Gemini API request path, or None when the method is none (e.g. ``countTokens``)."""
    match = _MODEL_METHOD.search(path)
    if match is None:
        return None
    model, method = match.groups()
    operation = _GEMINI_OPERATIONS.get(method)
    if operation is None:
        return None
    return GenAiRequest(operation, model, method in _STREAMED_METHODS, host, port)


def gen_ai_request(service: str, host: str, port: int | None, path: str) -> GenAiRequest | None:
    """The GenAI operation a request to ``service`` (a provider key) is, or None: Gemini's are the only ones."""
    return gemini_request(host, port, path) if service == "gemini" else None


def _json_after(body: bytes, key: bytes) -> object:
    """The JSON value after the last ``"key":`` of ``body`` (None when absent or malformed): the response's own
    fields follow its candidates, so only that value is decoded, never the generated content."""
    at = body.rfind(key)
    if at < 0:
        return None
    colon = body.find(b":", at + len(key))
    if colon < 0:
        return None
    try:
        text = body[colon + 1 :].decode("utf-8")
        value, _ = _decoder.raw_decode(text.lstrip())
    except ValueError:
        return None
    return value


def _count(usage: dict, key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def gemini_usage(body: bytes | None) -> TokenUsage | None:
    """Tokens of a Gemini ``generateContent``/``embedContent`` answer: input ``promptTokenCount``, output
    ``candidatesTokenCount`` + ``thoughtsTokenCount``; None when the answer carries no ``usageMetadata``."""
    if not body:
        return None
    usage = _json_after(body, _USAGE_KEY)
    if not isinstance(usage, dict):
        return None
    model = _json_after(body, _MODEL_VERSION_KEY)
    reasoning = _count(usage, "thoughtsTokenCount")
    return TokenUsage(
        input=_count(usage, "promptTokenCount"),
        output=_count(usage, "candidatesTokenCount") + reasoning,
        reasoning=reasoning,
        response_model=model if isinstance(model, str) else None,
    )


def usage_attributes(usage: TokenUsage) -> dict[str, AttributeValue]:
    """The span attributes of a call's tokens."""
    attributes: dict[str, AttributeValue] = {
        GEN_AI_USAGE_INPUT_TOKENS: usage.input,
        GEN_AI_USAGE_OUTPUT_TOKENS: usage.output,
    }
    if usage.reasoning:
        attributes[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning
    if usage.response_model:
        attributes[GEN_AI_RESPONSE_MODEL] = usage.response_model
    return attributes

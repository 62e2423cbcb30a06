"""GenAI conventions on Gemini calls: operation and model from the URL, tokens from the answer, streams left alone."""

from __future__ import annotations

import json

import httpcore
import httpx
import pytest

from otel_monitor.instrument.genai import (
    GEN_AI_OPT_IN,
    TokenUsage,
    gemini_request,
    gemini_usage,
    gen_ai_latest_experimental,
    gen_ai_request,
)
from otel_monitor.instrument.provider_http import (
    instrument_provider_calls,
    instrument_upstream_clients,
    uninstrument_http_clients,
)
from otel_monitor.instrument.providers import ProviderRegistry
from tests.support.provider_calls import Telemetry


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/v1beta/models/gemini-2.0-flash:generateContent", ("generate_content", "gemini-2.0-flash", False)),
        ("/v1/models/gemini-2.5-pro:streamGenerateContent", ("generate_content", "gemini-2.5-pro", True)),
        ("/v1beta/models/text-embedding-004:embedContent", ("embeddings", "text-embedding-004", False)),
        ("/v1beta/models/gemini-embedding-001:batchEmbedContents", ("embeddings", "gemini-embedding-001", False)),
        ("/v1beta/tunedModels/my-tuned-7:generateContent", ("generate_content", "my-tuned-7", False)),
        ("/v1beta/models/gemini-2.0-flash:countTokens", None),
        ("/v1beta/models/gemini-2.0-flash", None),
        ("/v1beta/files", None),
        ("", None),
    ],
)
def test_gemini_request_names_operation_and_model_from_the_path(path, expected):
    """The Gemini methods that are GenAI operations get the conventions' operation name and the URL's model."""
    request = gemini_request("generativelanguage.googleapis.com", 443, path)
    assert (None if request is None else (request.operation, request.model, request.streamed)) == expected


def test_gemini_request_attributes_and_span_name():
    """The metrics get the conventions' required attributes; the span also the server's address and port."""
    request = gemini_request(
        "generativelanguage.googleapis.com", 443, "/v1beta/models/gemini-2.0-flash:generateContent"
    )
    assert request is not None and request.span_name == "generate_content gemini-2.0-flash"
    required = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-2.0-flash",
    }
    assert request.metric_attributes == required
    assert request.span_attributes == {
        **required,
        "server.address": "generativelanguage.googleapis.com",
        "server.port": 443,
    }


@pytest.mark.parametrize("service", ["stability", "d-id", "youtube"])
def test_other_providers_are_no_gen_ai_operations(service):
    """A model-shaped path on another provider is not read as Gemini's."""
    assert gen_ai_request(service, "api.example", None, "/v1beta/models/x:generateContent") is None


def _answer(usage: dict | None, model: str | None = "gemini-2.5-flash-001", text: str = "hello") -> bytes:
    body: dict = {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}}]}
    if usage is not None:
        body["usageMetadata"] = usage
    if model is not None:
        body["modelVersion"] = model
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "body,expected",
    [
        (
            _answer({"promptTokenCount": 12, "candidatesTokenCount": 30, "totalTokenCount": 42}),
            TokenUsage(12, 30, 0, "gemini-2.5-flash-001"),
        ),
        (  # thinking tokens are billed as output: counted in it and given apart
            _answer({"promptTokenCount": 12, "candidatesTokenCount": 30, "thoughtsTokenCount": 50}),
            TokenUsage(12, 80, 50, "gemini-2.5-flash-001"),
        ),
        (_answer({"promptTokenCount": 7}, model=None), TokenUsage(7, 0, 0, None)),
        (  # generated text quoting the field names does not fool the reader
            _answer(
                {"promptTokenCount": 3, "candidatesTokenCount": 4},
                text='say "usageMetadata": {"promptTokenCount": 999} and "modelVersion": "evil"',
            ),
            TokenUsage(3, 4, 0, "gemini-2.5-flash-001"),
        ),
        (
            _answer({"promptTokenCount": "many", "candidatesTokenCount": -2}),
            TokenUsage(0, 0, 0, "gemini-2.5-flash-001"),
        ),
        (_answer(None), None),
        (b'{"usageMetadata": ', None),
        (b"\xff\xfe not json", None),
        (b"", None),
        (None, None),
    ],
)
def test_gemini_usage_reads_the_counts(body, expected):
    """Input is promptTokenCount, output candidatesTokenCount + thoughtsTokenCount; malformed answers give none."""
    assert gemini_usage(body) == expected


def test_token_usage_adds_up_over_requests():
    """A call's tokens are the sum over its requests; the last answer's model names it."""
    assert TokenUsage(1, 2, 0, "a") + TokenUsage(10, 20, 5, "b") == TokenUsage(11, 22, 5, "b")


@pytest.mark.parametrize(
    "value,expected",
    [(None, False), ("http", False), (GEN_AI_OPT_IN, True), (f"http, {GEN_AI_OPT_IN}", True), ("gen_ai", False)],
)
def test_opt_in_is_read_from_the_standard_variable(monkeypatch, value, expected):
    """Only gen_ai_latest_experimental in OTEL_SEMCONV_STABILITY_OPT_IN opts into the latest GenAI conventions."""
    if value is None:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    else:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", value)
    assert gen_ai_latest_experimental() is expected


# -- the body of a Gemini answer, read by the transport wrapper: whole when it tells tokens, never when streamed ----
GEMINI_HOST = "https://generativelanguage.googleapis.com"


class _Chunks:
    """A response body in chunks, remembering how many were read; ``fail_after`` chunks then a read timeout."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks, self.fail_after, self.read = chunks, fail_after, 0

    def __iter__(self):
        for chunk in self.chunks:
            if self.fail_after is not None and self.read >= self.fail_after:
                raise httpcore.ReadTimeout("the provider stopped sending")
            self.read += 1
            yield chunk

    def close(self) -> None:
        pass


class _AnsweringPool:
    """Stands in for httpcore's connection pool: answers every request with ``body``."""

    def __init__(self, body: _Chunks) -> None:
        self.body = body

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        return httpcore.Response(200, headers=[(b"content-type", b"application/json")], content=self.body)

    def close(self) -> None:
        pass


@pytest.fixture
def instrumented():
    """The provider wrapper under the upstream httpx instrumentation, on in-memory telemetry."""
    recorded = Telemetry()
    instrument_provider_calls(recorded.recorder, ProviderRegistry())
    instrument_upstream_clients(recorded.tracer_provider, recorded.meter_provider)
    yield recorded
    uninstrument_http_clients()


def _client(body: _Chunks) -> httpx.Client:
    transport = httpx.HTTPTransport()
    transport._pool = _AnsweringPool(body)
    return httpx.Client(transport=transport)


def test_streamed_answer_is_left_to_the_caller(instrumented):
    """A streamGenerateContent answer is not read by the wrapper: the caller gets every chunk as it comes; the
    call is a GenAI operation without tokens."""
    body = _Chunks([b'data: {"candidates": []}\n\n', b'data: {"usageMetadata": {"promptTokenCount": 5}}\n\n'])
    url = f"{GEMINI_HOST}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    with _client(body).stream("POST", url, content=b"{}") as response:
        assert body.read == 0
        assert len(list(response.iter_bytes())) >= 1 and body.read == 2
    (span,) = instrumented.captured.spans()
    assert span.attributes["gen_ai.request.model"] == "gemini-2.5-flash"
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_answer_cut_short_raises_the_callers_own_exception(instrumented):
    """A generateContent answer that stops mid-body raises httpx's ReadTimeout to the caller, as its own read
    would have, and the call is a timeout."""
    body = _Chunks([b'{"candidates": [', b"]}"], fail_after=1)
    with pytest.raises(httpx.ReadTimeout):
        _client(body).post(f"{GEMINI_HOST}/v1beta/models/gemini-2.5-flash:generateContent", content=b"{}")
    assert instrumented.calls("gemini") == {("timeout", "GEMINI_TIMEOUT"): 1}

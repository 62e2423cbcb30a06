"""Provider calls made with the real google-genai SDK (over httpx2) and with requests are tracked like httpx calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import pytest
import redis
import requests
from google import genai
from google.genai import errors, types
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from examples.demo_backend.launcher import DEMO_SECRETS
from otel_monitor.instrument.failure_streaks import RedisFailureStreaks
from otel_monitor.instrument.genai import GEN_AI_OPT_IN
from otel_monitor.instrument.metrics import PromNames
from otel_monitor.instrument.provider_http import instrument_http_clients, uninstrument_http_clients
from otel_monitor.instrument.providers import SERVICE_KEYS, ProviderRegistry
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.telemetry import setup_telemetry
from otel_monitor.instrument.usage_counter import UsageCounter
from otel_monitor.monitor.alerting.evaluate.evaluator import Evaluator
from otel_monitor.monitor.alerting.evaluate.sources import PrometheusSource, streak_trace_lookup
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.redaction.scrubber import SecretScrubber
from tests.support.alerts import firing
from tests.support.backends import closed_port, prom_values, span_tags, wait_for_prom
from tests.support.provider_calls import Telemetry
from tools.devstack import wait_until

MODEL = "gemini-2.5-flash"
GEMINI_KEY = DEMO_SECRETS["gemini_api_key"]
STABILITY_AUTH = {"Authorization": f"Bearer {DEMO_SECRETS['stability_api_key']}"}
DID_AUTH = {"Authorization": f"Basic {DEMO_SECRETS['did_api_key']}"}
IMAGE = {"text_prompts": [{"text": "an otter"}], "samples": 1}
TALK = {"source_url": "https://example.test/otter.jpg", "script": {"type": "text", "input": "hello"}}
RULES_FILE = "config/alert-rules.yaml"


def provider_hosts(fakes) -> dict[str, list[str]]:
    """The fakes as provider hosts; YouTube on a port that refuses connections."""
    hosts = {s: [fakes.base_url(s).split("://", 1)[1]] for s in SERVICE_KEYS}
    hosts["youtube"] = [f"127.0.0.1:{closed_port()}"]
    return hosts


@pytest.fixture
def telemetry(fakes):
    """Every HTTP client instrumented on in-memory exporters, as ``setup_telemetry`` does."""
    recorded = Telemetry()
    recorded.hosts = provider_hosts(fakes)
    recorded.registry = ProviderRegistry.with_hosts(recorded.hosts)
    instrument_http_clients(recorded)
    for service in SERVICE_KEYS:
        fakes.set_fault(service, mode="ok", latencies=[0])
    yield recorded
    uninstrument_http_clients()


def gemini(fakes, key: str = GEMINI_KEY) -> genai.Client:
    """The official SDK pointed at the fake Gemini."""
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fakes.base_url("gemini")))


def http_span(telemetry):
    """The one upstream HTTP client span of the test."""
    (span,) = [s for s in telemetry.captured.spans() if s.name in ("GET", "POST")]
    return span


def trace_id_of(span) -> str:
    return format(span.context.trace_id, "032x")


# -- google-genai over httpx2 --------------------------------------------------------------------------------------
def test_gemini_sdk_call_is_tracked_on_its_http_span(telemetry, fakes):
    """A google-genai call is one provider call on the upstream httpx2 span: attributes and metrics by service."""
    client = gemini(fakes)  # held: a client collected mid-call closes its connection pool
    reply = client.models.generate_content(model=MODEL, contents="a script about otters")
    assert "otters" in reply.text
    span = http_span(telemetry)
    assert (span.attributes["external_api.service"], span.attributes["external_api.outcome"]) == ("gemini", "success")
    assert span.instrumentation_scope.name == "opentelemetry.instrumentation.httpx"
    assert telemetry.calls("gemini") == {("success", ""): 1}


@pytest.mark.parametrize(
    "mode,error,code",
    [
        ("invalid_key", errors.ClientError, "GEMINI_INVALID_API_KEY"),
        ("quota", errors.ClientError, "GEMINI_QUOTA_EXCEEDED"),
        ("rate_limit", errors.ClientError, "GEMINI_RATE_LIMITED"),
        ("server_error", errors.ServerError, "GEMINI_SERVER_ERROR"),
    ],
)
def test_gemini_sdk_errors_are_classified_from_the_error_body(telemetry, fakes, mode, error, code):
    """The SDK's refused call gets the error code its body names (an invalid key is a 400 that only the body tells
    apart), on the span, in the metrics and in the failure streak with its trace; the SDK still reads the body."""
    fakes.set_fault("gemini", mode=mode)
    client = gemini(fakes)
    with pytest.raises(error) as raised:
        client.models.generate_content(model=MODEL, contents="otters")
    assert raised.value.status  # the SDK parsed the provider's error body after the wrapper read it
    span = http_span(telemetry)
    assert span.attributes["error.type"] == code and span.status.status_code.name == "ERROR"
    assert telemetry.calls("gemini") == {("error", code): 1}
    streak = telemetry.recorder.streaks.current("gemini")
    assert (streak.count, streak.last_trace_id) == (1, trace_id_of(span))


def test_gemini_sdk_async_calls_are_tracked(telemetry, fakes):
    """The SDK's async client (httpx2.AsyncClient) is tracked like the sync one."""
    fakes.set_fault("gemini", mode="invalid_key")

    client = gemini(fakes)

    async def call():
        return await client.aio.models.generate_content(model=MODEL, contents="otters")

    with pytest.raises(errors.ClientError):
        asyncio.run(call())
    assert telemetry.calls("gemini") == {("error", "GEMINI_INVALID_API_KEY"): 1}


def test_gemini_sdk_attempts_in_a_tracked_call_are_retries(telemetry, fakes):
    """Inside track_external_call, an SDK call after a refused one is a retry of the same logical call."""
    refused, accepted = gemini(fakes, key="AIzaWrongKey-0123456789abcdefghijklm"), gemini(fakes)
    with telemetry.recorder.track("gemini", "generateContent") as call:
        with pytest.raises(errors.ClientError):
            refused.models.generate_content(model=MODEL, contents="x")
        accepted.models.generate_content(model=MODEL, contents="x")
    assert (call.attempts, call.retries, call.classification.outcome) == (2, 1, "success")
    assert telemetry.captured.points("external_api.retries") == {(("service", "gemini"),): 1}
    call_span = telemetry.captured.span("gemini generateContent")
    attempts = telemetry.captured.spans("POST")
    assert len(attempts) == 2 and {s.parent.span_id for s in attempts} == {call_span.context.span_id}


# -- requests ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "service,method,path,body,auth,mode,expected,field",
    [
        (
            "stability",
            "POST",
            "/v1/generation/sdxl/text-to-image",
            IMAGE,
            STABILITY_AUTH,
            "ok",
            ("success", ""),
            "artifacts",
        ),
        (
            "stability",
            "POST",
            "/v1/generation/sdxl/text-to-image",
            IMAGE,
            STABILITY_AUTH,
            "invalid_key",
            ("error", "STABILITY_INVALID_API_KEY"),
            "name",
        ),
        (
            "stability",
            "POST",
            "/v1/generation/sdxl/text-to-image",
            IMAGE,
            STABILITY_AUTH,
            "quota",
            ("error", "STABILITY_QUOTA_EXCEEDED"),
            "name",
        ),
        ("d-id", "POST", "/talks", TALK, DID_AUTH, "ok", ("success", ""), "id"),
        ("d-id", "GET", "/credits", None, DID_AUTH, "invalid_key", ("error", "D_ID_INVALID_API_KEY"), "kind"),
        ("d-id", "GET", "/credits", None, DID_AUTH, "rate_limit", ("error", "D_ID_RATE_LIMITED"), "kind"),
        ("d-id", "POST", "/talks", TALK, DID_AUTH, "server_error", ("error", "D_ID_SERVER_ERROR"), "kind"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_requests_calls_are_tracked_and_classified(
    telemetry, fakes, service, method, path, body, auth, mode, expected, field, stream
):
    """A requests call to Stability or D-ID is one provider call on the upstream requests span, classified from
    the provider's error body; the caller still reads that body, streamed or not."""
    fakes.set_fault(service, mode=mode)
    response = requests.request(
        method, fakes.base_url(service) + path, json=body, headers=auth, timeout=10, stream=stream
    )
    assert field in response.json()
    span = http_span(telemetry)
    assert span.name == method and span.instrumentation_scope.name == "opentelemetry.instrumentation.requests"
    assert (span.attributes["external_api.service"], span.attributes["external_api.outcome"]) == (service, expected[0])
    assert span.attributes.get("error.type", "") == expected[1]
    assert telemetry.calls(service) == {expected: 1}


@pytest.mark.parametrize(
    "service,call,raised,expected",
    [
        (
            "d-id",
            lambda url: requests.get(f"{url}/credits", headers=DID_AUTH, timeout=0.3),
            requests.ReadTimeout,
            ("timeout", "D_ID_TIMEOUT"),
        ),
        (
            "youtube",
            lambda url: requests.get(f"{url}/youtube/v3/channels", timeout=2),
            requests.ConnectionError,
            ("error", "YOUTUBE_CONNECTION_FAILED"),
        ),
    ],
)
def test_requests_failures_without_an_answer_are_classified(telemetry, fakes, service, call, raised, expected):
    """A requests call that times out or cannot connect is counted by its outcome; the host's exception is
    re-raised unchanged."""
    fakes.set_fault("d-id", mode="timeout", hang_seconds=2)
    url = f"http://{telemetry.hosts[service][0]}" if service == "youtube" else fakes.base_url(service)
    with pytest.raises(raised):
        call(url)
    assert telemetry.calls(service) == {expected: 1}
    assert http_span(telemetry).attributes["external_api.error_code"] == expected[1]


def test_requests_attempts_in_a_tracked_call_are_retries(telemetry, fakes):
    """Inside track_external_call, a requests call after a refused one is a retry, below the call's own span."""
    url = f"{fakes.base_url('stability')}/v1/generation/sdxl/text-to-image"
    wrong = {"Authorization": "Bearer sk-wrong-0123456789"}
    with telemetry.recorder.track("stability", "text-to-image") as call:
        assert requests.post(url, json=IMAGE, headers=wrong).status_code == 401
        requests.post(url, json=IMAGE, headers=STABILITY_AUTH).raise_for_status()
    assert (call.attempts, call.retries, call.classification.outcome) == (2, 1, "success")
    call_span = telemetry.captured.span("stability text-to-image")
    attempts = telemetry.captured.spans("POST")
    assert len(attempts) == 2 and {s.parent.span_id for s in attempts} == {call_span.context.span_id}


def test_requests_to_other_hosts_are_not_provider_calls(telemetry, fakes):
    """A requests call to a host outside the registry gets the upstream span only."""
    requests.get(f"{fakes.base_url('gemini').replace('127.0.0.1', 'localhost')}/_fake/stats", timeout=5)
    assert "external_api.service" not in http_span(telemetry).attributes
    assert telemetry.captured.points("external_api.call.duration") == {}


# -- the stack: an invalid key through either client is the provider's P0, with the failing call's trace ---------


@pytest.mark.stack
def test_invalid_key_through_the_sdk_and_requests_raises_the_p0_with_its_trace(stack, fakes, tmp_path):
    """google-genai and requests calls refused for an invalid key raise GeminiInvalidApiKey and
    StabilityInvalidApiKey (shipped rules, real Prometheus) carrying the failing call's trace_id; Gemini's
    requests are counted for its quota."""
    name = f"clients-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(stack.redis_url)
    streaks = RedisFailureStreaks(client)
    streaks.reset(["gemini", "stability"])
    usage = UsageCounter(client, background=False)
    since = dt.datetime.now(dt.UTC)
    gemini_used = usage.used("gemini", since)
    spans = InMemorySpanExporter()
    settings = TelemetrySettings(
        service_name=name,
        otlp_endpoint=stack.otlp_http_endpoint,
        metric_export_interval_seconds=1,
        redis_url=stack.redis_url,
        provider_hosts=provider_hosts(fakes),
        log_dir=str(tmp_path),
        console_logs=False,
    )
    telemetry = setup_telemetry(settings, span_exporter=spans, scrubber=SecretScrubber(), set_global=False)
    try:
        fakes.set_fault("gemini", mode="invalid_key")
        fakes.set_fault("stability", mode="invalid_key")
        client = gemini(fakes)
        with pytest.raises(errors.ClientError):
            client.models.generate_content(model=MODEL, contents="otters")
        response = requests.post(
            f"{fakes.base_url('stability')}/v1/generation/sdxl/text-to-image",
            json=IMAGE,
            headers=STABILITY_AUTH,
            timeout=10,
        )
        assert response.status_code == 401
        telemetry.force_flush()
        telemetry.recorder.streaks.flush()
        telemetry.recorder.usage.flush()
        failing = {
            s.attributes["external_api.service"]: trace_id_of(s)
            for s in spans.get_finished_spans()
            if "external_api.service" in s.attributes
        }
        assert set(failing) == {"gemini", "stability"}

        # Every error code's series exists from set-up at 0 (counters start at zero): the failed ones are above it.
        ours = f'sum by (error_code) (external_api_errors_total{{job="{name}"}}) > 0'
        wait_until(
            lambda: len(prom_values(stack.prometheus_url, ours, ("error_code",))) == 2,
            60,
            interval=1,
            what="both error counters in Prometheus",
        )
        assert prom_values(stack.prometheus_url, ours, ("error_code",)) == {
            ("GEMINI_INVALID_API_KEY",): 1.0,
            ("STABILITY_INVALID_API_KEY",): 1.0,
        }

        wanted = {"GeminiInvalidApiKey", "StabilityInvalidApiKey"}
        rules = [r for r in load_rules(RULES_FILE, promtool=None) if r.name in wanted]

        async def evaluate() -> dict:
            source = PrometheusSource(stack.prometheus_url)
            try:
                return await firing(
                    Evaluator(rules, {"promql": source}, trace_lookup=streak_trace_lookup(streaks)), wanted
                )
            finally:
                await source.aclose()

        alerts = asyncio.run(evaluate())
        assert {rule: (a.priority.name, a.labels["service"], a.trace_id) for rule, a in alerts.items()} == {
            "GeminiInvalidApiKey": ("P0", "gemini", failing["gemini"]),
            "StabilityInvalidApiKey": ("P0", "stability", failing["stability"]),
        }
        assert usage.used("gemini", since) == gemini_used + 1
    finally:
        telemetry.shutdown()
        uninstrument_http_clients()
        fakes.set_fault("gemini", mode="ok")
        fakes.set_fault("stability", mode="ok")


# -- GenAI conventions: the tokens the fake Gemini answered, on the span and in the token histogram -------------------
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "a thirty second script about otters"}]}]}
GEN_AI_MODELS = ("gemini-2.0-flash", "gemini-2.5-flash")  # the fake thinks on 2.5 (thoughts billed as output)


def answered_tokens(usage: dict) -> tuple[int, int]:
    """(input, output) tokens of a Gemini usageMetadata, output counting the thoughts."""
    return usage["promptTokenCount"], usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)


def gemini_by_httpx(fakes, model: str) -> dict:
    response = httpx.post(
        f"{fakes.base_url('gemini')}/v1beta/models/{model}:generateContent",
        headers={"x-goog-api-key": GEMINI_KEY},
        json=PROMPT,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["usageMetadata"]


def gemini_by_requests(fakes, model: str) -> dict:
    response = requests.post(
        f"{fakes.base_url('gemini')}/v1/models/{model}:generateContent",
        params={"key": GEMINI_KEY},
        json=PROMPT,
        timeout=10,
        stream=True,
    )
    response.raise_for_status()
    return response.json()["usageMetadata"]


def gemini_by_sdk(fakes, model: str) -> dict:
    client = gemini(fakes)  # held: a client collected mid-call closes its connection pool
    reply = client.models.generate_content(model=model, contents="a thirty second script about otters")
    usage = reply.usage_metadata
    return {
        "promptTokenCount": usage.prompt_token_count,
        "candidatesTokenCount": usage.candidates_token_count,
        "thoughtsTokenCount": usage.thoughts_token_count or 0,
    }


GEN_AI_CLIENTS = {"httpx": gemini_by_httpx, "requests": gemini_by_requests, "google-genai": gemini_by_sdk}


def token_sums(telemetry) -> dict[tuple[str, str], float]:
    """{(request model, token type): tokens} of the gen_ai.client.token.usage histogram."""
    return {
        (point.labels["gen_ai.request.model"], point.labels["gen_ai.token.type"]): point.data.sum
        for point in telemetry.captured.collect()
        if point.name == "gen_ai.client.token.usage"
    }


@pytest.mark.parametrize("client", sorted(GEN_AI_CLIENTS))
def test_gemini_calls_carry_the_answered_tokens(telemetry, fakes, client):
    """Through raw httpx, requests (streamed) and google-genai, each model's call has the conventions' attributes
    and the tokens the fake answered, on its span and in the token histogram; the prompt and reply never appear."""
    answered = {model: answered_tokens(GEN_AI_CLIENTS[client](fakes, model)) for model in GEN_AI_MODELS}
    assert len(set(answered.values())) == len(GEN_AI_MODELS)  # the models answered different counts
    spans = {s.attributes["gen_ai.request.model"]: s for s in telemetry.captured.spans() if s.name == "POST"}
    assert set(spans) == set(GEN_AI_MODELS)
    for model, (input_tokens, output_tokens) in answered.items():
        attributes = spans[model].attributes
        assert {key: attributes.get(key) for key in GEN_AI_SPAN_KEYS} == {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
        }
        assert not any("otters" in str(value) for value in attributes.values())
    assert token_sums(telemetry) == {
        (model, kind): float(tokens)
        for model, counts in answered.items()
        for kind, tokens in zip(("input", "output"), counts, strict=True)
    }
    assert telemetry.captured.points("gen_ai.client.operation.duration") == {}  # external_api.call.duration has it


GEN_AI_SPAN_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
)


@pytest.fixture
def opted_in(fakes, monkeypatch):
    """Every HTTP client instrumented on in-memory exporters, opted into the latest GenAI conventions."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", f"http,{GEN_AI_OPT_IN}")
    recorded = Telemetry()
    recorded.registry = ProviderRegistry.with_hosts(provider_hosts(fakes))
    instrument_http_clients(recorded)
    fakes.set_fault("gemini", mode="ok", latencies=[0])
    yield recorded
    uninstrument_http_clients()
    fakes.set_fault("gemini", mode="ok")


def test_opted_in_calls_record_the_operation_duration_with_their_error_type(opted_in, fakes):
    """Opted in, each call's duration is in gen_ai.client.operation.duration with the conventions' required
    attributes, a refused one with its error.type and no tokens."""
    gemini_by_httpx(fakes, MODEL)
    fakes.set_fault("gemini", mode="rate_limit")
    client = gemini(fakes)
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="gemini-2.0-flash", contents="otters")
    required = {"gen_ai.operation.name": "generate_content", "gen_ai.provider.name": "gcp.gemini"}
    refused_labels = {**required, "gen_ai.request.model": "gemini-2.0-flash", "error.type": "GEMINI_RATE_LIMITED"}
    assert opted_in.captured.points("gen_ai.client.operation.duration") == {
        tuple(sorted({**required, "gen_ai.request.model": MODEL}.items())): 1,
        tuple(sorted(refused_labels.items())): 1,
    }
    assert {model for model, _ in token_sums(opted_in)} == {MODEL}
    refused = opted_in.captured.span("generate_content gemini-2.0-flash")
    assert "gen_ai.usage.input_tokens" not in refused.attributes


def test_tracked_call_sums_the_tokens_of_its_attempts_on_its_own_span(telemetry, fakes):
    """Inside track_external_call the GenAI attributes go on the call's span, its tokens the sum of its requests."""
    with telemetry.recorder.track("gemini", "generateContent"):
        first, second = (answered_tokens(gemini_by_httpx(fakes, MODEL)) for _ in range(2))
    call_span = telemetry.captured.span("gemini generateContent")
    assert (call_span.attributes["gen_ai.usage.input_tokens"], call_span.attributes["gen_ai.usage.output_tokens"]) == (
        first[0] + second[0],
        first[1] + second[1],
    )
    assert all("gen_ai.usage.input_tokens" not in s.attributes for s in telemetry.captured.spans("POST"))


def test_span_is_named_by_operation_and_model_only_when_opted_in(telemetry, opted_in, fakes):
    """The span keeps its name unless OTEL_SEMCONV_STABILITY_OPT_IN has gen_ai_latest_experimental."""
    gemini_by_httpx(fakes, MODEL)
    assert {s.name for s in opted_in.captured.spans()} == {f"generate_content {MODEL}"}
    uninstrument_http_clients()
    instrument_http_clients(telemetry)  # instrumented as without the opt-in
    gemini_by_httpx(fakes, MODEL)
    assert {s.name for s in telemetry.captured.spans()} == {"POST"}


def jaeger_spans(jaeger_url: str, service: str) -> list[dict]:
    """Every span Jaeger holds for ``service``."""
    response = httpx.get(f"{jaeger_url}/api/traces", params={"service": service, "limit": 100}, timeout=10)
    response.raise_for_status()
    return [span for found in response.json().get("data") or [] for span in found["spans"]]


@pytest.mark.stack
def test_answered_tokens_reach_prometheus_and_jaeger_per_model(stack, fakes, tmp_path):
    """After Gemini calls through raw httpx and the real google-genai client, Prometheus's gen_ai token sums and
    the spans' token attributes read from Jaeger equal the tokens the fake answered, per model and token type."""
    name = f"genai-{uuid.uuid4().hex[:8]}"
    settings = TelemetrySettings(
        service_name=name,
        otlp_endpoint=stack.otlp_http_endpoint,
        metric_export_interval_seconds=1,
        provider_hosts=provider_hosts(fakes),
        log_dir=str(tmp_path),
        console_logs=False,
    )
    telemetry = setup_telemetry(settings, scrubber=SecretScrubber(), set_global=False)
    expected: dict[tuple[str, str], float] = {}
    try:
        fakes.set_fault("gemini", mode="ok", latencies=[0])
        for client in ("httpx", "google-genai"):
            for model in GEN_AI_MODELS:
                counts = answered_tokens(GEN_AI_CLIENTS[client](fakes, model))
                for kind, tokens in zip(("input", "output"), counts, strict=True):
                    expected[(model, kind)] = expected.get((model, kind), 0) + tokens
        telemetry.force_flush()
    finally:
        telemetry.shutdown()
        uninstrument_http_clients()
    assert len({expected[(m, "output")] for m in GEN_AI_MODELS}) == len(GEN_AI_MODELS)

    query = (
        f"sum by (gen_ai_request_model, gen_ai_token_type) "
        f'({PromNames.GEN_AI_TOKEN_USAGE}_sum{{job="{name}", gen_ai_provider_name="gcp.gemini"}})'
    )
    by = ("gen_ai_request_model", "gen_ai_token_type")
    assert wait_for_prom(stack.prometheus_url, query, by, expected) == expected

    def span_tokens() -> dict[tuple[str, str], float]:
        found: dict[tuple[str, str], float] = {}
        for span in jaeger_spans(stack.jaeger_url, name):
            tags = span_tags(span)
            if tags.get("gen_ai.provider.name") != "gcp.gemini":
                continue
            for kind in ("input", "output"):
                key = (tags["gen_ai.request.model"], kind)
                found[key] = found.get(key, 0) + tags[f"gen_ai.usage.{kind}_tokens"]
        return found

    last: dict = {}

    def arrived() -> bool:
        nonlocal last
        last = span_tokens()
        return last == expected

    try:
        wait_until(arrived, 30, interval=1, what="the Gemini spans in Jaeger")
    except TimeoutError:
        pass
    assert last == expected

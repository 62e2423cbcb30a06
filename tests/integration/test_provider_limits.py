"""A provider refusal that names its limit (Gemini's 429 RetryInfo and QuotaFailure, Stability's 60-second lockout)
is told apart: its own error code, the limit and when it clears on the span, in the log line and in the alert."""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
import pytest
import requests
from google import genai
from google.genai import errors, types
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from examples.demo_backend.launcher import DEMO_SECRETS
from otel_monitor.instrument.provider_http import instrument_http_clients, uninstrument_http_clients
from otel_monitor.instrument.providers import SERVICE_KEYS, ProviderRegistry
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.telemetry import setup_telemetry
from otel_monitor.monitor.alerting.evaluate.evaluator import Evaluator
from otel_monitor.monitor.alerting.evaluate.sources import PrometheusSource
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.redaction.scrubber import SecretScrubber
from tests.support.alerts import firing
from tests.support.backends import prom_values
from tests.support.provider_calls import Telemetry
from tools.devstack import wait_until

MODEL = "gemini-2.0-flash"
GEMINI_KEY = DEMO_SECRETS["gemini_api_key"]
RULES_FILE = "config/alert-rules.yaml"
# fault mode of the fake Gemini -> error code, limit, when it clears, Google's RetryInfo delay
GEMINI_LIMITS = {
    "rate_limit": ("GEMINI_RATE_LIMITED", "per-minute requests", "retry in 46 s", 46.0),
    "token_rate_limit": ("GEMINI_RATE_LIMITED", "per-minute input tokens", "retry in 47 s", 46.837906927),
    "quota": ("GEMINI_QUOTA_EXCEEDED", "requests per day", "resets at 00:00 Pacific", 42.0),
}


def provider_hosts(fakes) -> dict[str, list[str]]:
    return {s: [fakes.base_url(s).split("://", 1)[1]] for s in SERVICE_KEYS}


@pytest.fixture
def telemetry(fakes):
    """Every HTTP client instrumented on in-memory exporters, the fakes answering normally to begin with."""
    recorded = Telemetry()
    recorded.registry = ProviderRegistry.with_hosts(provider_hosts(fakes))
    instrument_http_clients(recorded)
    for service in SERVICE_KEYS:
        fakes.set_fault(service, mode="ok", latencies=[0])
    yield recorded
    uninstrument_http_clients()
    for service in SERVICE_KEYS:
        fakes.set_fault(service, mode="ok")


def call_gemini_raw(fakes) -> None:
    response = httpx.post(
        f"{fakes.base_url('gemini')}/v1beta/models/{MODEL}:generateContent",
        params={"key": GEMINI_KEY},
        json={"contents": [{"parts": [{"text": "otters"}]}]},
        timeout=10,
    )
    assert response.status_code == 429
    assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"  # the caller still reads the body


def call_gemini_sdk(fakes) -> None:
    client = genai.Client(api_key=GEMINI_KEY, http_options=types.HttpOptions(base_url=fakes.base_url("gemini")))
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="otters")
    assert raised.value.code == 429


def finished_call(telemetry, caplog, service: str):
    """The one provider span of the test and the failed call's log line."""
    (span,) = [s for s in telemetry.captured.spans() if s.attributes.get("external_api.service") == service]
    (line,) = [r for r in caplog.records if r.getMessage() == "External API call finished"]
    return span, line


@pytest.mark.parametrize("call", [call_gemini_raw, call_gemini_sdk], ids=["raw-http", "google-genai"])
@pytest.mark.parametrize("mode", sorted(GEMINI_LIMITS))
def test_gemini_429_names_its_limit_and_when_it_clears(telemetry, fakes, caplog, call, mode):
    """Per-minute throttles and the per-day exhaustion get different error codes; the span, the log line and the
    refusal metric name the limit, its model and when it clears (RetryInfo, or the day's reset at Pacific midnight)."""
    code, limit, clears, retry_after = GEMINI_LIMITS[mode]
    fakes.set_fault("gemini", mode=mode)
    with caplog.at_level(logging.WARNING, logger="otel_monitor.external_calls"):
        call(fakes)
    span, line = finished_call(telemetry, caplog, "gemini")
    attributes = span.attributes
    assert (attributes["error.type"], attributes["external_api.limit"]) == (code, limit)
    assert (attributes["external_api.limit_model"], attributes["external_api.limit_clears"]) == (MODEL, clears)
    assert attributes["external_api.retry_after_s"] == retry_after
    assert attributes["external_api.limit_quota_id"] in fakes_quota_ids()
    assert (line.error_code, line.limit, line.limit_model, line.limit_clears) == (code, limit, MODEL, clears)
    refusals = telemetry.captured.collect().points("external_api.retry_after")
    assert [dict(labels) for labels in refusals] == [
        {"service": "gemini", "error_code": code, "limit": limit, "model": MODEL}
    ]


def fakes_quota_ids() -> set[str]:
    from examples.fake_providers.gemini import QUOTA_VIOLATIONS

    return {violation[0] for violation in QUOTA_VIOLATIONS.values()}


def test_stability_429_is_the_60_second_lockout(telemetry, fakes, caplog):
    """Stability's 429 is rate limiting, not spent credits: retry after its 60-second lockout, on the span and in
    the log line."""
    fakes.set_fault("stability", mode="rate_limit")
    with caplog.at_level(logging.WARNING, logger="otel_monitor.external_calls"):
        response = requests.post(
            f"{fakes.base_url('stability')}/v1/generation/sdxl/text-to-image",
            json={"text_prompts": [{"text": "an otter"}], "samples": 1},
            headers={"Authorization": f"Bearer {DEMO_SECRETS['stability_api_key']}"},
            timeout=10,
        )
    assert response.status_code == 429
    span, line = finished_call(telemetry, caplog, "stability")
    assert (span.attributes["error.type"], span.attributes["external_api.retry_after_s"]) == (
        "STABILITY_RATE_LIMITED",
        60.0,
    )
    assert (line.error_code, line.retry_after_s, line.limit_clears) == ("STABILITY_RATE_LIMITED", 60.0, "retry in 60 s")


@pytest.mark.stack
def test_per_minute_and_per_day_429_raise_different_alerts_naming_limit_and_clearing(stack, fakes, tmp_path):
    """A per-minute 429 with RetryInfo and a per-day exhaustion, through the real google-genai client, reach real
    Prometheus and raise two alerts (shipped rules) with different error codes, each naming its limit, its model and
    when it clears."""
    name = f"limits-{uuid.uuid4().hex[:8]}"
    settings = TelemetrySettings(
        service_name=name,
        otlp_endpoint=stack.otlp_http_endpoint,
        metric_export_interval_seconds=1,
        redis_url=stack.redis_url,
        provider_hosts=provider_hosts(fakes),
        log_dir=str(tmp_path),
        console_logs=False,
    )
    telemetry = setup_telemetry(
        settings, span_exporter=InMemorySpanExporter(), scrubber=SecretScrubber(), set_global=False
    )
    try:
        for mode in ("token_rate_limit", "quota"):
            fakes.set_fault("gemini", mode=mode)
            call_gemini_sdk(fakes)
        telemetry.force_flush()
        ours = f'sum by (error_code, limit) (external_api_retry_after_seconds_count{{job="{name}"}})'
        wait_until(
            lambda: len(prom_values(stack.prometheus_url, ours, ("error_code", "limit"))) == 2,
            60,
            interval=1,
            what="both refusals in Prometheus",
        )
        wanted = {"GeminiRateLimited", "GeminiDailyQuotaExhausted"}
        rules = [r for r in load_rules(RULES_FILE, promtool=None) if r.name in wanted]

        async def evaluate() -> dict:
            source = PrometheusSource(stack.prometheus_url)
            try:
                return await firing(Evaluator(rules, {"promql": source}), wanted)
            finally:
                await source.aclose()

        alerts = asyncio.run(evaluate())
        assert {rule: (a.priority.name, a.error_code, a.summary) for rule, a in alerts.items()} == {
            "GeminiRateLimited": (
                "P2",
                "GEMINI_RATE_LIMITED",
                f"Gemini throttles calls: per-minute input tokens of {MODEL}: retry in 47 s",
            ),
            "GeminiDailyQuotaExhausted": (
                "P1",
                "GEMINI_QUOTA_EXCEEDED",
                f"Gemini refuses calls: requests per day of {MODEL} used up: resets at 00:00 Pacific",
            ),
        }
    finally:
        telemetry.shutdown()
        uninstrument_http_clients()
        fakes.set_fault("gemini", mode="ok")

"""Provider calls: one span, metrics by service and outcome, retries and partial failures, never harming the host."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from examples.demo_backend.launcher import DEMO_SECRETS
from otel_monitor.instrument.provider_http import (
    instrument_provider_calls,
    instrument_upstream_clients,
    uninstrument_http_clients,
)
from otel_monitor.instrument.providers import SERVICE_KEYS, ProviderRegistry
from tests.support.provider_calls import Telemetry

GEMINI_KEY = DEMO_SECRETS["gemini_api_key"]
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "a script about otters"}]}]}


@pytest.fixture
def telemetry(fakes):
    """The provider wrapper under the upstream httpx instrumentation, as ``setup_telemetry`` installs them."""
    recorded = Telemetry()
    hosts = {s: [fakes.base_url(s).split("://", 1)[1]] for s in SERVICE_KEYS}
    instrument_provider_calls(recorded.recorder, ProviderRegistry.with_hosts(hosts))
    instrument_upstream_clients(recorded.tracer_provider, recorded.meter_provider)
    for service in SERVICE_KEYS:
        fakes.set_fault(service, mode="ok", latencies=[0])
    yield recorded
    uninstrument_http_clients()


def gemini_url(fakes):
    return f"{fakes.base_url('gemini')}/v1beta/models/gemini-2.5-flash:generateContent"


def test_plain_httpx_call_to_a_provider_is_tracked(telemetry, fakes):
    """A bare httpx request to a provider is one call on ONE span: the upstream HTTP span gets the provider's fields."""
    httpx.post(gemini_url(fakes), headers={"x-goog-api-key": GEMINI_KEY}, json=PROMPT).raise_for_status()
    (span,) = telemetry.captured.spans()
    assert span.name == "POST"
    assert span.attributes.get("http.request.method", span.attributes.get("http.method")) == "POST"
    assert span.attributes["external_api.service"] == "gemini"
    assert span.attributes["external_api.outcome"] == "success"
    assert telemetry.captured.points("external_api.call.duration") == {
        (("outcome", "success"), ("service", "gemini")): 1
    }
    assert telemetry.captured.points("external_api.errors") == {}


def test_bare_error_answer_marks_the_http_span(telemetry, fakes):
    """A bare request answered with an invalid-key error carries the error code on its HTTP span."""
    assert httpx.post(gemini_url(fakes), headers={"x-goog-api-key": "wrong"}, json=PROMPT).status_code == 400
    (span,) = telemetry.captured.spans()
    assert span.attributes["error.type"] == "GEMINI_INVALID_API_KEY"
    assert span.status.status_code.name == "ERROR"


def test_requests_to_other_hosts_are_not_provider_calls(telemetry, fakes):
    """Requests to hosts outside the registry pass through untouched."""
    httpx.get(f"{fakes.base_url('gemini').replace('127.0.0.1', 'localhost')}/_fake/stats")
    (span,) = telemetry.captured.spans()  # the upstream HTTP span only
    assert "external_api.service" not in span.attributes
    assert telemetry.captured.points("external_api.call.duration") == {}


def test_attempt_after_a_failure_is_a_retry(telemetry, fakes):
    """Within one tracked call, a request after a failed one counts as a retry; the call succeeds."""
    with telemetry.recorder.track("gemini", "generateContent") as call:
        assert httpx.post(gemini_url(fakes), headers={"x-goog-api-key": "wrong"}, json=PROMPT).status_code == 400
        httpx.post(gemini_url(fakes), headers={"x-goog-api-key": GEMINI_KEY}, json=PROMPT).raise_for_status()
    assert (call.attempts, call.retries, call.classification.outcome) == (2, 1, "success")
    assert telemetry.captured.points("external_api.retries") == {(("service", "gemini"),): 1}
    call_span = telemetry.captured.span("gemini generateContent")
    attempts = telemetry.captured.spans("POST")
    assert len(attempts) == 2 and {s.parent.span_id for s in attempts} == {call_span.context.span_id}


def test_polling_after_success_is_not_a_retry(telemetry, fakes):
    """Requests after a successful one (polling a D-ID talk) are steps of the call, not retries."""
    auth = {"Authorization": f"Basic {DEMO_SECRETS['did_api_key']}"}
    with telemetry.recorder.track("d-id", "talks.create") as call:
        talk = httpx.post(
            f"{fakes.base_url('d-id')}/talks",
            headers=auth,
            json={"source_url": "https://x/y.jpg", "script": {"type": "text", "input": "hi"}},
        ).json()
        for _ in range(3):
            httpx.get(f"{fakes.base_url('d-id')}/talks/{talk['id']}", headers=auth).raise_for_status()
    assert (call.attempts, call.retries) == (4, 0)
    assert telemetry.captured.points("external_api.retries") == {}


@pytest.mark.parametrize(
    "mode,outcome,code",
    [
        ("invalid_key", "error", "STABILITY_INVALID_API_KEY"),
        ("quota", "error", "STABILITY_QUOTA_EXCEEDED"),
        ("rate_limit", "error", "STABILITY_RATE_LIMITED"),
        ("server_error", "error", "STABILITY_SERVER_ERROR"),
    ],
)
def test_error_answers_are_classified_from_the_real_body(telemetry, fakes, mode, outcome, code):
    """An error answer that the caller raises on is recorded with the provider's error code, then re-raised."""
    fakes.set_fault("stability", mode=mode)
    url = f"{fakes.base_url('stability')}/v1/generation/sdxl/text-to-image"
    with pytest.raises(httpx.HTTPStatusError):
        with telemetry.recorder.track("stability", "text-to-image"):
            httpx.post(
                url,
                headers={"Authorization": f"Bearer {DEMO_SECRETS['stability_api_key']}"},
                json={"text_prompts": [{"text": "x"}], "samples": 1},
            ).raise_for_status()
    assert telemetry.calls("stability") == {(outcome, code): 1}
    span = telemetry.captured.span("stability text-to-image")
    assert span.status.status_code.name == "ERROR" and span.attributes["error.type"] == code


def test_timeout_is_its_own_outcome(telemetry, fakes):
    """A client timeout is outcome=timeout with <SERVICE>_TIMEOUT and the host's exception unchanged."""
    fakes.set_fault("d-id", mode="timeout", hang_seconds=2)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            f"{fakes.base_url('d-id')}/credits",
            timeout=0.3,
            headers={"Authorization": f"Basic {DEMO_SECRETS['did_api_key']}"},
        )
    assert telemetry.calls("d-id") == {("timeout", "D_ID_TIMEOUT"): 1}


def test_partial_failure_counts_items(telemetry):
    """3 of 5 images is outcome=partial_failure, with 3 succeeded and 2 failed items."""
    with telemetry.recorder.track("stability", "text-to-image") as call:
        call.mark_partial(3, 5)
    assert telemetry.calls("stability") == {("partial_failure", "STABILITY_PARTIAL_FAILURE"): 1}
    assert telemetry.captured.points("external_api.items") == {
        (("result", "failed"), ("service", "stability")): 2,
        (("result", "succeeded"), ("service", "stability")): 3,
    }


class RefreshError(Exception):
    """Named like google.auth.exceptions.RefreshError."""


@pytest.mark.parametrize(
    "error,refresh_code",
    [
        (None, None),
        (RefreshError("invalid_grant: Token has been expired or revoked."), "YOUTUBE_INVALID_API_KEY"),
        (RefreshError("503 backend unavailable"), "YOUTUBE_TOKEN_REFRESH_FAILED"),
    ],
)
def test_token_refresh_outcomes(telemetry, error, refresh_code):
    """OAuth refreshes are counted by outcome; a refused refresh token is an invalid credential."""
    try:
        with telemetry.recorder.track("youtube", "videos.insert") as call:
            with call.token_refresh():
                if error:
                    raise error
    except RefreshError:
        pass
    outcome = "failure" if error else "success"
    assert telemetry.captured.points("external_api.token_refreshes") == {
        (("outcome", outcome), ("service", "youtube")): 1
    }
    assert call.classification.error_code("youtube") == refresh_code


def test_decorator_tracks_each_invocation_sync_and_async(telemetry):
    """As a decorator, every invocation (sync or async) is a call of its own."""

    @telemetry.recorder.track("gemini", "sync")
    def sync():
        return 1

    @telemetry.recorder.track("gemini", "async")
    async def coro():
        return 2

    assert sync() + sync() + asyncio.run(coro()) == 4
    assert sorted(s.name for s in telemetry.captured.spans()) == ["gemini async", "gemini sync", "gemini sync"]


def test_async_client_calls_are_tracked(telemetry, fakes):
    """httpx.AsyncClient requests to providers are tracked like sync ones."""

    async def call():
        async with httpx.AsyncClient() as client:
            return await client.post(gemini_url(fakes), headers={"x-goog-api-key": "bad"}, json=PROMPT)

    assert asyncio.run(call()).status_code == 400
    assert telemetry.calls("gemini") == {("error", "GEMINI_INVALID_API_KEY"): 1}


def test_secret_in_a_recorded_exception_is_scrubbed(telemetry, fakes):
    """An exception message holding ?key= is recorded on the span without the key."""
    fakes.set_fault("gemini", mode="invalid_key")
    with pytest.raises(httpx.HTTPStatusError) as raised:
        with telemetry.recorder.track("gemini", "generateContent"):
            httpx.post(gemini_url(fakes), params={"key": GEMINI_KEY}, json=PROMPT).raise_for_status()
    assert GEMINI_KEY in str(raised.value)  # the host's own exception is unchanged
    spans = telemetry.captured.spans()
    assert GEMINI_KEY not in repr([(s.attributes, [e.attributes for e in s.events]) for s in spans])
    assert "key=REDACTED" in telemetry.captured.span("gemini generateContent").events[0].attributes["exception.message"]
    http_span = telemetry.captured.span("POST").attributes
    assert "key=REDACTED" in http_span.get("url.full", http_span.get("http.url"))


class BrokenStreaks:
    def record(self, *args, **kwargs):
        raise RuntimeError("telemetry bug")


def test_a_telemetry_failure_never_reaches_the_host():
    """When recording itself fails, the host's call still returns its value."""
    recorded = Telemetry(streaks=BrokenStreaks())
    with recorded.recorder.track("gemini", "x"):
        value = 42
    assert value == 42
    assert len(recorded.captured.spans()) == 1  # the span still ends

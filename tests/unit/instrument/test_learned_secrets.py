"""Keys seen on outgoing provider requests are learned and scrubbed from every line the library writes."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import uuid

import httpx
import pytest
import requests
from google import genai
from google.genai import errors, types

from otel_monitor.instrument.provider_http import instrument_http_clients, uninstrument_http_clients
from otel_monitor.instrument.providers import SERVICE_KEYS, ProviderRegistry
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.redaction.scrubber import REDACTED, SecretScrubber, request_credentials
from otel_monitor.testing import capture_telemetry
from tests.support.backends import read_log_lines
from tests.support.provider_calls import Telemetry

BASIC = base64.b64encode(b"demo-user:demo-basic-password").decode()


@pytest.mark.parametrize(
    "query,headers,learned",
    [
        ("key=AIzaQueryKey0123&alt=sse", {}, ["AIzaQueryKey0123"]),
        ("monkey=banana", {}, []),
        ("", {"x-goog-api-key": "goog-header-key"}, ["goog-header-key"]),
        ("", {"authorization": "Bearer sk-bearer-token"}, ["sk-bearer-token"]),
        ("", {"authorization": f"Basic {BASIC}"}, [BASIC, "demo-basic-password"]),
        ("", {"authorization": "Basic not-base64!"}, ["not-base64!"]),
        ("", {"authorization": "bare-key-in-header"}, ["bare-key-in-header"]),
        ("", {"authorization": 'Digest username="u", response="r"'}, []),
    ],
)
def test_request_credentials(query, headers, learned):
    """The key query parameter, x-goog-api-key and the Authorization credentials are what a request carries."""
    assert request_credentials(query, lambda name: headers.get(name)) == learned


def test_learned_secrets_are_bounded_oldest_forgotten_registered_kept():
    """Past the bound the oldest learned value is forgotten; registered values and short ones are never at stake."""
    scrubber = SecretScrubber(max_learned=3)
    scrubber.register("registered-secret")
    for secret in ("learned-one", "learned-two", "learned-three", "learned-four", "short"):
        scrubber.learn(secret)
    scrubber.learn("registered-secret")  # already known: not learned again, so never evicted
    scrubber.learn("learned-five")
    known = {
        s
        for s in (
            "registered-secret",
            "learned-one",
            "learned-two",
            "learned-three",
            "learned-four",
            "learned-five",
            "short",
        )
        if scrubber.knows(s)
    }
    assert known == {"registered-secret", "learned-three", "learned-four", "learned-five"}
    assert scrubber.scrub_text("learned-two learned-five registered-secret") == f"learned-two {REDACTED} {REDACTED}"


class BrokenScrubber(SecretScrubber):
    def learn(self, secret):
        raise RuntimeError("telemetry bug")


# -- the case to prove: a provider echoes the key back, the host logs the error body with its own logger ------------
def echo_through_requests(fakes, key: str) -> str:
    response = requests.post(
        f"{fakes.base_url('stability')}/v1/generation/sdxl/text-to-image",
        json={"text_prompts": [{"text": "x"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 401
    return response.text


def echo_through_httpx_query(fakes, key: str) -> str:
    response = httpx.post(
        f"{fakes.base_url('gemini')}/v1beta/models/gemini-2.5-flash:generateContent",
        params={"key": key},
        json={"contents": [{"parts": [{"text": "x"}]}]},
    )
    assert response.status_code == 400
    return response.text


def echo_through_gemini_sdk(fakes, key: str) -> str:
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fakes.base_url("gemini")))
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-flash", contents="x")
    return str(raised.value)


@pytest.fixture
def start_host(fakes, tmp_path):
    """Starts a backend process: ``setup_telemetry`` with console and file logs, spans and OTLP log records in
    memory (``capture_telemetry``). Started by the test itself, so the console handler writes to the test's
    captured stderr."""
    with contextlib.ExitStack() as started:  # each capture started is closed at exit

        def start():
            hosts = {s: [fakes.base_url(s).split("://", 1)[1]] for s in SERVICE_KEYS}
            settings = TelemetrySettings(
                service_name="learned-secrets", log_dir=str(tmp_path), console_logs=True, provider_hosts=hosts
            )
            return started.enter_context(capture_telemetry(settings, scrubber=SecretScrubber(), configure_logs=True))

        fakes.set_fault("gemini", mode="echo_key")
        fakes.set_fault("stability", mode="echo_key")
        yield start
    uninstrument_http_clients()
    fakes.set_fault("gemini", mode="ok")
    fakes.set_fault("stability", mode="ok")


@pytest.mark.parametrize("client", [echo_through_requests, echo_through_httpx_query, echo_through_gemini_sdk])
def test_a_key_echoed_by_the_provider_is_scrubbed_from_the_hosts_own_lines(start_host, fakes, tmp_path, capsys, client):
    """A key held in no *_API_KEY variable, echoed in the provider's error body and logged by the host's own
    logger, is in no app.log line, console line, OTLP log record or span attribute."""
    host = start_host()
    key = f"host-held-{uuid.uuid4().hex}"
    assert key not in os.environ.values()
    echoed = client(fakes, key)
    assert key in echoed  # the fake quoted it back: unscrubbed, the host's line would carry it
    backend = logging.getLogger("backend.images")
    backend.error("Provider refused the call: %s", echoed)
    try:
        raise RuntimeError(f"provider said {echoed}")
    except RuntimeError:
        backend.exception("Generation failed")
    host.telemetry.force_flush()

    lines = [line for line in read_log_lines(tmp_path) if line["logger"] == "backend.images"]
    assert [line["message"].split(":")[0] for line in lines] == ["Provider refused the call", "Generation failed"]
    assert REDACTED in lines[0]["message"] and REDACTED in lines[1]["exception"]["message"]
    assert key not in (tmp_path / "app.log").read_text()
    console = capsys.readouterr().err
    assert "Provider refused the call" in console and key not in console
    records = host.log_records()
    assert "Provider refused the call" in repr([r.body for r in records])
    assert key not in repr([(r.body, dict(r.attributes or {})) for r in records])
    spans = host.spans()
    assert any(s.attributes.get("external_api.error_code", "").endswith("_INVALID_API_KEY") for s in spans)
    assert key not in repr([(s.name, dict(s.attributes), [dict(e.attributes) for e in s.events]) for s in spans])


def test_learning_never_breaks_the_hosts_request(fakes):
    """A scrubber that fails to learn leaves the host's request and its tracking intact."""
    recorded = Telemetry(scrubber=BrokenScrubber())
    recorded.registry = ProviderRegistry.with_hosts({s: [fakes.base_url(s).split("://", 1)[1]] for s in SERVICE_KEYS})
    instrument_http_clients(recorded)
    try:
        fakes.set_fault("stability", mode="ok")
        response = requests.get(
            f"{fakes.base_url('stability')}/v1/user/balance", headers={"Authorization": "Bearer sk-any-key-0123456789"}
        )
    finally:
        uninstrument_http_clients()
    assert response.status_code == 401
    assert recorded.calls("stability") == {("error", "STABILITY_INVALID_API_KEY"): 1}

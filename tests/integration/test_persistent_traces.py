"""Jaeger on its embedded Badger storage: traces survive a restart (stopped or killed) and expire after the
configured retention."""

from __future__ import annotations

import secrets
import signal
import time

import httpx
import pytest

from tests.support.backends import jaeger_trace
from tests.support.stacks import private_stack
from tools.devstack import DevStack, wait_until

pytestmark = pytest.mark.stack

SPAN_NAMES = ("POST /api/v1/projects", "gemini generateContent")


def send_trace(jaeger: DevStack) -> str:
    """Sends one two-span trace to Jaeger's OTLP/HTTP receiver (JSON encoding); returns its trace id."""
    trace_id = secrets.token_hex(16)
    root_id, child_id = secrets.token_hex(8), secrets.token_hex(8)
    now = time.time_ns()
    spans = [
        {"traceId": trace_id, "spanId": root_id, "name": SPAN_NAMES[0], "kind": 2},
        {"traceId": trace_id, "spanId": child_id, "parentSpanId": root_id, "name": SPAN_NAMES[1], "kind": 3},
    ]
    for span in spans:
        span.update(startTimeUnixNano=str(now - 50_000_000), endTimeUnixNano=str(now))
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "video-api"}}]},
                "scopeSpans": [{"scope": {"name": "persistence-test"}, "spans": spans}],
            }
        ]
    }
    response = httpx.post(f"http://127.0.0.1:{jaeger.ports.jaeger_otlp_http}/v1/traces", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return trace_id


def span_names(jaeger: DevStack, trace_id: str) -> set[str]:
    trace = jaeger_trace(jaeger.jaeger_url, trace_id)
    return {span["operationName"] for span in trace["spans"]} if trace else set()


def stored(jaeger: DevStack, trace_id: str) -> set[str]:
    """The span names of the trace once Jaeger returns all of it (its batch processor writes asynchronously)."""
    return wait_until(
        lambda: span_names(jaeger, trace_id) == set(SPAN_NAMES), 30, interval=0.2, what="the trace in Jaeger"
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_trace_stored_before_a_restart_is_returned_after_it(stop_signal):
    """A trace Jaeger returned before it stopped (cleanly, or killed without a chance to flush) is returned again,
    whole, by GET /api/traces/{id} after it starts on the same data directory."""
    with private_stack("otel-monitor-badger-", "jaeger") as dev:
        trace_id = send_trace(dev)
        assert stored(dev, trace_id)
        dev["jaeger"].stop(sig=stop_signal)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{dev.jaeger_url}/api/traces/{trace_id}", timeout=2)
        dev["jaeger"].start()
        assert span_names(dev, trace_id) == set(SPAN_NAMES)
        assert jaeger_trace(dev.jaeger_url, secrets.token_hex(16)) is None  # nothing is returned for just any id


def test_a_trace_expires_after_the_configured_retention(monkeypatch):
    """JAEGER_TRACE_RETENTION sets Badger's span TTL: a trace Jaeger returned is gone once it is older than that."""
    monkeypatch.setenv("JAEGER_TRACE_RETENTION", "10s")
    with private_stack("otel-monitor-badger-ttl-", "jaeger") as dev:
        trace_id = send_trace(dev)
        assert stored(dev, trace_id)
        wait_until(lambda: not span_names(dev, trace_id), 60, interval=0.5, what="the trace to expire")

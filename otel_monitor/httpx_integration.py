"""Instruments httpx, sync and async: upstream spans and metrics for every request, provider calls within them."""

from __future__ import annotations

from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from otel_monitor.httpx_providers import instrument_provider_calls, uninstrument_provider_calls

__all__ = ["instrument_httpx", "uninstrument_httpx"]


def instrument_httpx(telemetry) -> None:
    """Provider wrapper first, upstream instrumentation on top: the provider code runs inside the HTTP span."""
    uninstrument_httpx()
    instrument_provider_calls(telemetry.recorder, telemetry.registry)
    HTTPXClientInstrumentor().instrument(tracer_provider=telemetry.tracer_provider,
                                         meter_provider=telemetry.meter_provider)


def uninstrument_httpx() -> None:
    """Removes both wrappers, the outer (upstream) one first."""
    instrumentor = HTTPXClientInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    uninstrument_provider_calls()

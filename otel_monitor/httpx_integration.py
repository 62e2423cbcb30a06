"""Instruments httpx, sync and async: upstream spans and metrics for every request, provider calls on top."""

from __future__ import annotations

from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from otel_monitor.httpx_providers import instrument_provider_calls, uninstrument_provider_calls

__all__ = ["instrument_httpx", "uninstrument_httpx"]


def instrument_httpx(telemetry) -> None:
    instrumentor = HTTPXClientInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    instrument_provider_calls(telemetry.recorder, telemetry.registry)


def uninstrument_httpx() -> None:
    HTTPXClientInstrumentor().uninstrument()
    uninstrument_provider_calls()

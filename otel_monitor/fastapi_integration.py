"""Instruments a FastAPI app with the upstream instrumentor, health probes excluded."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from otel_monitor.telemetry import Telemetry

__all__ = ["instrument_fastapi"]


def instrument_fastapi(app: FastAPI, telemetry: Telemetry) -> FastAPI:
    """Call in the app factory (not in lifespan): spans and HTTP server metrics for every route."""
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        excluded_urls=telemetry.settings.excluded_urls,
    )
    return app

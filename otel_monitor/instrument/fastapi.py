"""Instruments a FastAPI app with the upstream instrumentor, health probes excluded, telemetry flushed at shutdown."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from otel_monitor.instrument.telemetry import Telemetry

if TYPE_CHECKING:  # FastAPI is the backend's own dependency, not the library's
    from fastapi import FastAPI

__all__ = ["instrument_fastapi"]


def instrument_fastapi(app: FastAPI, telemetry: Telemetry) -> FastAPI:
    """Call in the app factory (not in lifespan): spans and HTTP server metrics for every route.

    The app's lifespan is wrapped so telemetry is flushed when the app shuts down: uvicorn re-raises SIGTERM
    after a graceful shutdown, so the process dies without running atexit hooks and queued spans would be lost.
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        excluded_urls=telemetry.settings.excluded_urls,
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan_then_flush(app_):
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await asyncio.to_thread(telemetry.shutdown)

    app.router.lifespan_context = lifespan_then_flush
    return app

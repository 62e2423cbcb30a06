"""Instruments Celery producers and workers: telemetry set up in each worker process, flushed when it exits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from otel_monitor.instrument.publish_stamp import stamp_published_at
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.telemetry import Telemetry, get_telemetry, setup_telemetry
from otel_monitor.logs.configure import configure_logging

__all__ = ["instrument_celery"]

_log = logging.getLogger(__name__)
_connected = False


def _instrument(telemetry: Telemetry) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor  # needs Celery: the [celery] extra

    instrumentor = CeleryInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)


def _is_prefork(pool: type | str | None) -> bool:
    """Whether a worker's pool (a class, or a name or alias such as "processes", not yet resolved at
    worker_init) forks child processes."""
    from celery.concurrency import get_implementation
    from celery.concurrency.prefork import TaskPool

    try:
        pool_class = get_implementation(pool) if isinstance(pool, str) or pool is None else pool
        return isinstance(pool_class, type) and issubclass(pool_class, TaskPool)
    except Exception:
        return True  # unknown: leave set-up to worker_process_init rather than set up before a fork


def instrument_celery(settings_factory: Callable[[], TelemetrySettings] = TelemetrySettings) -> None:
    """Call once where the Celery app is defined (imported by both the API process and the workers).

    Producer side: if this process already set up telemetry (the API), task publishes carry the trace
    context. Worker side: exporters are built in ``worker_process_init`` (after the prefork fork; threads do
    not survive a fork) and flushed in ``worker_process_shutdown``, so spans survive max-tasks-per-child.
    Celery's own root-logger set-up is replaced by the JSON logging (``setup_logging`` is connected).
    """
    from celery import signals  # needs Celery: the [celery] extra

    global _connected
    active = get_telemetry()
    if active is not None:
        _instrument(active)
    if _connected:
        return
    _connected = True

    # Lets the health check tell a queue that waits from one that is not consumed at all.
    signals.before_task_publish.connect(stamp_published_at, weak=False)

    @signals.setup_logging.connect(weak=False)
    def _logging(**_kwargs: Any) -> None:
        settings = settings_factory()
        configure_logging(
            log_dir=settings.log_dir, level=settings.log_level, console=settings.console_logs, background=True
        )

    def _start() -> None:
        if get_telemetry() is None:
            _instrument(setup_telemetry(settings_factory()))

    @signals.worker_process_init.connect(weak=False)
    def _child_started(**_kwargs: Any) -> None:
        _start()

    @signals.worker_init.connect(weak=False)
    def _worker_started(sender: Any = None, **_kwargs: Any) -> None:
        if not _is_prefork(getattr(sender, "pool_cls", None)):  # solo/threads pools: no child init comes
            _start()

    @signals.worker_process_shutdown.connect(weak=False)
    def _child_exiting(**_kwargs: Any) -> None:
        telemetry = get_telemetry()
        if telemetry is not None:
            telemetry.shutdown()

    @signals.worker_shutdown.connect(weak=False)
    def _worker_exiting(**_kwargs: Any) -> None:
        telemetry = get_telemetry()
        if telemetry is not None:
            telemetry.shutdown()

"""otel-monitor: error monitoring and alerting for a FastAPI + Celery backend, built on OpenTelemetry.

The package has two halves. ``otel_monitor.instrument``, ``otel_monitor.logs`` and ``otel_monitor.redaction`` run
inside the monitored backend (this module re-exports what a backend calls); ``otel_monitor.monitor`` is the
service that runs beside it (``otel-monitor serve``, installed with the ``[monitor]`` extra).
"""

from importlib.metadata import PackageNotFoundError, version

from otel_monitor.instrument.celery import instrument_celery
from otel_monitor.instrument.costs import project_scope
from otel_monitor.instrument.fastapi import instrument_fastapi
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.telemetry import Telemetry, get_telemetry, setup_telemetry, track_external_call
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.logs.operation import log_operation

try:
    __version__ = version("otel-monitor")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "setup_telemetry",
    "get_telemetry",
    "Telemetry",
    "TelemetrySettings",
    "instrument_fastapi",
    "instrument_celery",
    "track_external_call",
    "project_scope",
    "StructuredLogger",
    "log_operation",
]

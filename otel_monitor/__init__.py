"""otel-monitor: error monitoring and alerting for a FastAPI + Celery backend, built on OpenTelemetry."""

from otel_monitor.classification import Classification, classify_exception, classify_response
from otel_monitor.error_codes import ProviderFailure, SystemErrorCode, provider_error_code
from otel_monitor.external_calls import ExternalCall, current_external_call
from otel_monitor.instruments import Outcome
from otel_monitor.services import DEFAULT_PROVIDERS, Provider, ProviderRegistry
from otel_monitor.settings import TelemetrySettings
from otel_monitor.structured_logging import StructuredLogger, configure_logging, log_operation
from otel_monitor.telemetry import Telemetry, get_telemetry, setup_telemetry, track_external_call

__all__ = [
    "setup_telemetry", "get_telemetry", "Telemetry", "TelemetrySettings",
    "track_external_call", "ExternalCall", "current_external_call", "Outcome",
    "StructuredLogger", "configure_logging", "log_operation",
    "Classification", "classify_response", "classify_exception",
    "ProviderFailure", "SystemErrorCode", "provider_error_code",
    "Provider", "ProviderRegistry", "DEFAULT_PROVIDERS",
]

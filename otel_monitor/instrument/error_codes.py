"""Error codes (docs/requirements.md, Priorities and Thresholds): the one place they are spelled."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

__all__ = [
    "ProviderFailure",
    "provider_error_code",
    "SystemErrorCode",
    "ApiErrorCode",
    "ThresholdErrorCode",
    "TelemetryErrorCode",
    "defined_error_codes",
]


class ProviderFailure(str, Enum):
    """What went wrong with a provider call; combined with the service into ``<SERVICE>_<FAILURE>``."""

    INVALID_API_KEY = "INVALID_API_KEY"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    TIMEOUT = "TIMEOUT"
    CONNECTION_FAILED = "CONNECTION_FAILED"
    SERVER_ERROR = "SERVER_ERROR"
    BAD_REQUEST = "BAD_REQUEST"
    PARTIAL_FAILURE = "PARTIAL_FAILURE"
    TOKEN_REFRESH_FAILED = "TOKEN_REFRESH_FAILED"
    # YouTube's daily cap on a channel's uploads (``uploadLimitExceeded``): not the project's quota units.
    UPLOAD_LIMIT_EXCEEDED = "UPLOAD_LIMIT_EXCEEDED"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"


def provider_error_code(service: str, failure: ProviderFailure) -> str:
    """``provider_error_code("d-id", ProviderFailure.INVALID_API_KEY)`` -> ``"D_ID_INVALID_API_KEY"``."""
    return f"{service.upper().replace('-', '_')}_{failure.value}"


class SystemErrorCode(str, Enum):
    """P0 conditions of the backend's own dependencies."""

    DATABASE_CONNECTION_FAILED = "DATABASE_CONNECTION_FAILED"
    REDIS_CONNECTION_FAILED = "REDIS_CONNECTION_FAILED"
    FFMPEG_NOT_FOUND = "FFMPEG_NOT_FOUND"
    CELERY_WORKER_DOWN = "CELERY_WORKER_DOWN"
    DISK_SPACE_INSUFFICIENT = "DISK_SPACE_INSUFFICIENT"
    # The backend's API does not answer a client outside it (the blackbox exporter's probes fail).
    API_UNREACHABLE = "API_UNREACHABLE"
    # The outside probes themselves are missing (blackbox exporter down or not scraped): API_UNREACHABLE is blind.
    UPTIME_PROBE_MISSING = "UPTIME_PROBE_MISSING"
    # The monitor's own back end (Prometheus) does not answer: alerts from metrics are blind meanwhile.
    MONITORING_BACKEND_DOWN = "MONITORING_BACKEND_DOWN"


class ApiErrorCode(str, Enum):
    """Conditions over the external API calls of every provider (a ``service`` label says which one)."""

    API_CONSECUTIVE_FAILURES = "API_CONSECUTIVE_FAILURES"
    API_ERROR_RATE_HIGH = "API_ERROR_RATE_HIGH"
    API_SUCCESS_RATE_LOW = "API_SUCCESS_RATE_LOW"
    API_LATENCY_HIGH = "API_LATENCY_HIGH"
    API_RETRIES_HIGH = "API_RETRIES_HIGH"
    API_UPLOAD_SLOW = "API_UPLOAD_SLOW"
    QUOTA_USAGE_WARNING = "QUOTA_USAGE_WARNING"
    # Unspent prepaid credits (D-ID's packs) expire soon: used or not, they are gone after their expire_at.
    QUOTA_CREDITS_EXPIRING = "QUOTA_CREDITS_EXPIRING"
    # At the current burn rate (a long and a short window both), a quota runs out before it resets.
    QUOTA_EXHAUSTION_FORECAST = "QUOTA_EXHAUSTION_FORECAST"


class ThresholdErrorCode(str, Enum):
    """Thresholds for the host, the database, the task queue and the product (docs/requirements.md, Thresholds)."""

    CPU_USAGE_HIGH = "CPU_USAGE_HIGH"
    MEMORY_USAGE_HIGH = "MEMORY_USAGE_HIGH"
    DISK_SPACE_LOW = "DISK_SPACE_LOW"
    DATABASE_CONNECTIONS_HIGH = "DATABASE_CONNECTIONS_HIGH"
    CELERY_QUEUE_BACKLOG = "CELERY_QUEUE_BACKLOG"
    PROJECT_SUCCESS_RATE_LOW = "PROJECT_SUCCESS_RATE_LOW"
    PROJECT_GENERATION_SLOW = "PROJECT_GENERATION_SLOW"
    ACTIVE_USERS_DECLINING = "ACTIVE_USERS_DECLINING"
    # A spend budget (USD, per provider or in total, per UTC day or month): forecast to run out before its period
    # ends at the current burn rate (P1), or spent (P0).
    BUDGET_EXHAUSTION_FORECAST = "BUDGET_EXHAUSTION_FORECAST"
    BUDGET_SPENT = "BUDGET_SPENT"


class TelemetryErrorCode(str, Enum):
    """Conditions of the backend's own telemetry: what it dropped rather than block or fail the host."""

    TELEMETRY_DROPPED = "TELEMETRY_DROPPED"


def defined_error_codes(services: Iterable[str]) -> frozenset[str]:
    """Every code spelled here: each provider failure of each of ``services``, then the system, API, threshold and
    telemetry codes. The shipped rules use only these (a test holds them to it); a user's own rules file may use
    codes of its own, so loading rules does not check against this set."""
    return frozenset(
        {provider_error_code(service, failure) for service in services for failure in ProviderFailure}
        | {
            code.value
            for group in (SystemErrorCode, ApiErrorCode, ThresholdErrorCode, TelemetryErrorCode)
            for code in group
        }
    )

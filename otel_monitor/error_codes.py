"""Error codes of the specification: the one place they are spelled."""

from __future__ import annotations

from enum import Enum

__all__ = ["ProviderFailure", "provider_error_code", "SystemErrorCode"]


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
    # The monitor's own back end (Prometheus) does not answer: alerts from metrics are blind meanwhile.
    MONITORING_BACKEND_DOWN = "MONITORING_BACKEND_DOWN"

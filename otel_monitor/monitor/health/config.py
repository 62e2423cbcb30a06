"""What the health checks watch and their thresholds, validated strictly once at load."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = ["HealthConfig", "DATABASE_SCHEMES", "REDIS_SCHEMES", "redis_url_scheme"]

DATABASE_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def _scheme(url: str) -> str:
    # "postgresql+psycopg" -> "postgresql": SQLAlchemy names the driver after a plus.
    return urlsplit(url).scheme.split("+", 1)[0].lower()


def redis_url_scheme(value: str | None, info: ValidationInfo) -> str | None:
    """A pydantic field validator: None, or a URL redis-py connects to (``REDIS_SCHEMES``)."""
    if value is not None and _scheme(value) not in REDIS_SCHEMES:
        raise ValueError(f"{info.field_name} must be a Redis URL ({', '.join(REDIS_SCHEMES)}://...)")
    return value


# Paired thresholds: the stricter level of a pair -> (its milder level, the order that must hold, the error's verb).
# Fields are validated in declaration order, so the milder level is declared first.
_THRESHOLD_PAIRS: dict[str, tuple[str, Callable[[float, float], bool], str]] = {
    "disk_free_unhealthy_below_percent": ("disk_free_degraded_below_percent", operator.le, "must not exceed"),
    "celery_queue_critical_above": ("celery_queue_degraded_above", operator.ge, "must not be below"),
}


class HealthConfig(BaseModel):
    """Where the backend's dependencies are and when each counts as degraded or unhealthy (by default the system
    thresholds of docs/requirements.md).

    URL fields may carry credentials: they are left out of ``repr`` and invalid input is never echoed in errors.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

    # The monitored backend's PostgreSQL, SQLAlchemy style (postgresql+psycopg://...) or libpq; None: not checked.
    database_url: str | None = Field(None, repr=False)
    redis_url: str | None = Field(None, repr=False)
    # The Celery broker (Redis transport); None: Celery not checked.
    celery_broker_url: str | None = Field(None, repr=False)
    celery_queues: list[str] = Field(default_factory=lambda: ["celery"], min_length=1)
    ffmpeg_binary: str = Field("ffmpeg", min_length=1)
    disk_path: str = Field("/", min_length=1)

    check_timeout_seconds: float = Field(1.0, gt=0, le=60)
    # Health is checked every 5 minutes (docs/requirements.md, Cadence).
    cache_ttl_seconds: float = Field(300.0, gt=0, le=86400)

    # Latency over these makes a check degraded; the requirements set none, these are generous for a check that
    # connects.
    database_latency_degraded_ms: float = Field(500.0, gt=0)
    redis_latency_degraded_ms: float = Field(100.0, gt=0)

    # System thresholds: disk free warning below 20 %, critical below 10 % (a P0 condition).
    disk_free_degraded_below_percent: float = Field(20.0, gt=0, le=100)
    disk_free_unhealthy_below_percent: float = Field(10.0, gt=0, le=100)

    # System thresholds: Celery queue warning over 50 (a P1 condition), critical over 100.
    celery_queue_degraded_above: int = Field(50, ge=0)
    celery_queue_critical_above: int = Field(100, ge=0)
    # A long queue is a P1 condition, not P0: still "degraded" by default (see the checks package).
    celery_queue_critical_status: Literal["degraded", "unhealthy"] = "degraded"
    # The oldest pending message waiting longer than this while workers answer: the queue is stalled (unhealthy).
    # Longer than one video (8.5 min on average), shorter than the 20 min warning level of the generation time.
    celery_stall_seconds: float = Field(900.0, gt=0)
    # How long workers get to answer `inspect active_queues`; the inspect always waits this long.
    celery_inspect_timeout_seconds: float = Field(0.5, gt=0)

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        if value is not None and _scheme(value) not in DATABASE_SCHEMES:
            raise ValueError(f"database_url must be a PostgreSQL URL ({', '.join(DATABASE_SCHEMES)}[+driver]://...)")
        return value

    _redis_scheme = field_validator("redis_url", "celery_broker_url")(redis_url_scheme)

    @field_validator("celery_queues")
    @classmethod
    def _queue_names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("celery_queues must not hold empty names")
        return value

    @field_validator(*_THRESHOLD_PAIRS)
    @classmethod
    def _pair_in_order(cls, value: float, info: ValidationInfo) -> float:
        assert info.field_name is not None  # pydantic names the field a field validator runs for
        milder_name, holds, relation = _THRESHOLD_PAIRS[info.field_name]
        milder = info.data.get(milder_name)
        if milder is not None and not holds(value, milder):
            raise ValueError(f"{info.field_name} {relation} {milder_name}")
        return value

    @field_validator("celery_inspect_timeout_seconds")
    @classmethod
    def _inspect_within_timeout(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("check_timeout_seconds")
        if timeout is not None and value >= timeout:
            raise ValueError(
                "celery_inspect_timeout_seconds must be below check_timeout_seconds "
                "(the inspect waits its whole timeout, inside the check's)"
            )
        return value

"""Settings of the instrumented backend's telemetry, read from the environment (prefix OTEL_MONITOR_)."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from otel_monitor.instrument.probe_paths import PROBE_PATHS
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.instrument.usage_counter import DEFAULT_UNIT_COSTS

__all__ = ["TelemetrySettings"]


class TelemetrySettings(BaseSettings):
    """How a backend process reports: where to, as which service, how often; invalid values fail at load."""

    model_config = SettingsConfigDict(env_prefix="OTEL_MONITOR_", extra="forbid")

    service_name: str = "video-backend"
    service_version: str = "0.0.0"
    environment: str = "development"
    # OTLP/HTTP base URL of the collector; /v1/traces, /v1/metrics and /v1/logs are appended.
    otlp_endpoint: str = "http://127.0.0.1:4318"
    export_timeout_seconds: float = Field(2.0, gt=0, le=60)
    metric_export_interval_seconds: float = Field(10.0, gt=0, le=3600)
    span_schedule_delay_seconds: float = Field(2.0, gt=0, le=60)
    span_queue_size: int = Field(8192, ge=64)
    export_logs: bool = True
    log_dir: str = "logs"
    log_level: str = "INFO"
    console_logs: bool = True
    # Redis URL shared by every process of the backend, for consecutive-failure streaks and active users (the
    # monitor reads both there, at its quota.redis_url, and exports them); empty: streaks per process, no users.
    redis_url: str | None = None
    # Quota units per call, by provider and operation ("*": any other), counted in Redis for the quota of
    # providers without a usage API (Gemini requests per day, YouTube units). Needs redis_url.
    quota_unit_costs: dict[str, dict[str, float]] = Field(default_factory=lambda: {
        service: dict(table) for service, table in DEFAULT_UNIT_COSTS.items()})
    # Hosts per provider key, overriding the public ones (e.g. local fakes): {"gemini": ["127.0.0.1:18001"]}.
    provider_hosts: dict[str, list[str]] = Field(default_factory=dict)
    # Paths whose requests are not traced (health probes).
    excluded_urls: str = ",".join(PROBE_PATHS)
    # The host's CPU, memory and disk (host_*_ratio{host}), read at each export; false: not exported.
    host_metrics: bool = True
    # The ``host`` label of those series; empty: the machine's hostname.
    host_name: str | None = None
    # Disk free is exported for the file systems of these paths (comma-separated or a JSON list), one series per
    # mount point; empty: the log dir's and the current directory's.
    disk_paths: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("provider_hosts", "quota_unit_costs")
    @classmethod
    def _known_providers(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(SERVICE_KEYS))
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; known: {list(SERVICE_KEYS)}")
        return value

    @field_validator("host_name")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("disk_paths", mode="before")
    @classmethod
    def _paths(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list):  # other items are left to the type check, which names the key
            value = [path.strip() if isinstance(path, str) else path for path in value]
            return [path for path in value if path != ""]
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

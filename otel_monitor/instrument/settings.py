"""Settings of the instrumented backend's telemetry, read from the environment: OTEL_MONITOR_* over OTEL_*."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any
from urllib.parse import unquote

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from otel_monitor.instrument.costs import Price
from otel_monitor.instrument.prices import DEFAULT_PRICES
from otel_monitor.instrument.probe_paths import PROBE_PATHS
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.instrument.usage_counter import DEFAULT_UNIT_COSTS

__all__ = ["TelemetrySettings"]

# The OpenTelemetry SDK's variables that name one of the settings: variable -> (setting, its unit is milliseconds).
_STANDARD_VARIABLES: dict[str, tuple[str, bool]] = {
    "OTEL_SERVICE_NAME": ("service_name", False),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otlp_endpoint", False),
    "OTEL_EXPORTER_OTLP_TIMEOUT": ("export_timeout_seconds", True),
    "OTEL_METRIC_EXPORT_INTERVAL": ("metric_export_interval_seconds", True),
    "OTEL_BSP_SCHEDULE_DELAY": ("span_schedule_delay_seconds", True),
    "OTEL_BSP_MAX_QUEUE_SIZE": ("span_queue_size", False),
}
# Resource attributes of OTEL_RESOURCE_ATTRIBUTES that name a setting; the first one present wins, and the
# variables above win over them (OTEL_SERVICE_NAME over service.name, as the SDK has it).
_RESOURCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "service_name": ("service.name",),
    "service_version": ("service.version",),
    "environment": ("deployment.environment.name", "deployment.environment"),
}


def _resource_attributes(text: str) -> dict[str, str]:
    """``key1=value1,key2=value2`` (values percent-encoded) as a mapping; entries without ``=`` are ignored."""
    attributes = {}
    for entry in text.split(","):
        key, equals, value = entry.partition("=")
        if equals and key.strip():
            attributes[key.strip()] = unquote(value.strip())
    return attributes


def _seconds(milliseconds: str) -> float | str:
    """A duration the SDK variables give in milliseconds, in seconds; text that is no number is left for the
    setting's validation to refuse, naming the setting."""
    try:
        return float(milliseconds) / 1000
    except ValueError:
        return milliseconds


class StandardOtelVariables(PydanticBaseSettingsSource):
    """The OpenTelemetry SDK's own environment variables, for the settings they name (durations converted from
    milliseconds); a settings source below the OTEL_MONITOR_* variables. Empty variables count as unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        def variable(name: str) -> str | None:
            return (os.environ.get(name) or "").strip() or None

        values: dict[str, Any] = {}
        attributes = _resource_attributes(variable("OTEL_RESOURCE_ATTRIBUTES") or "")
        for setting, keys in _RESOURCE_ATTRIBUTES.items():
            found = next((attributes[key] for key in keys if attributes.get(key)), None)
            if found is not None:
                values[setting] = found
        for name, (setting, in_milliseconds) in _STANDARD_VARIABLES.items():
            raw = variable(name)
            if raw is not None:
                values[setting] = _seconds(raw) if in_milliseconds else raw
        return values


class TelemetrySettings(BaseSettings):
    """How a backend process reports: where to, as which service, how often; invalid values fail at load.

    Each setting comes from, first to last: the arguments, its ``OTEL_MONITOR_<SETTING>`` variable, the
    OpenTelemetry SDK's variable naming it (``StandardOtelVariables``), its default."""

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
    quota_unit_costs: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {service: dict(table) for service, table in DEFAULT_UNIT_COSTS.items()}
    )
    # USD prices per provider, then per model (Gemini) or operation ("*": any other), pricing every call (cost.amount
    # on its span, external_api_cost_usd_total) and each video project; the shipped ones are examples to check
    # (otel_monitor/instrument/prices.py). JSON: {"gemini": {"gemini-2.5-flash": {"input_per_million_tokens": 0.3}}}.
    prices: dict[str, dict[str, Price]] = Field(
        default_factory=lambda: {
            service: {key: Price(**price) for key, price in table.items()} for service, table in DEFAULT_PRICES.items()
        }
    )
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Below every OTEL_MONITOR_* source: a variable of this library's own says what it wants for it.
        return init_settings, env_settings, dotenv_settings, file_secret_settings, StandardOtelVariables(settings_cls)

    @field_validator("provider_hosts", "quota_unit_costs", "prices")
    @classmethod
    def _known_providers(cls, value: dict[str, Any]) -> dict[str, Any]:
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

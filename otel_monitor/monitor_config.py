"""The monitor service's configuration file (`otel-monitor serve --config FILE`): one model, strictly validated."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from otel_monitor.alerting.delivery_config import DeliveryConfig
from otel_monitor.alerting.sources import DEFAULT_MAX_CONCURRENT_QUERIES
from otel_monitor.health.config import HealthConfig
from otel_monitor.quota.config import QuotaConfig
from otel_monitor.alerting.daily_summary import DailySummaryConfig

__all__ = ["MonitorConfig", "ServerConfig", "MonitorTelemetryConfig", "AlertingConfig"]


class ServerConfig(BaseModel):
    """Where the monitor's HTTP API listens."""

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class MonitorTelemetryConfig(BaseModel):
    """How the monitor reports itself: its health and quota gauges go to the collector like the backend's metrics."""

    model_config = ConfigDict(extra="forbid")
    service_name: str = "otel-monitor"
    otlp_endpoint: str = "http://127.0.0.1:4318"
    metric_export_interval_seconds: float = Field(10.0, gt=0, le=3600)
    log_dir: str = "logs"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AlertingConfig(BaseModel):
    """The alert rules, the back ends they read and where notifications go. ``rules_file`` is relative to the
    config file. Evaluation and delivery run only when ``enabled``; ``store_url`` holds the delivery outbox, the
    alerts and the incidents (None: the quota store's database). ``heartbeat_url``, when set, is pinged with
    ``heartbeat_method`` every ``heartbeat_interval_seconds`` (a dead man's switch for an outside watcher).
    At most ``max_concurrent_queries`` PromQL queries of the rules are in flight at ``prometheus_url`` at once."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    rules_file: str | None = None
    prometheus_url: str = "http://127.0.0.1:9090"
    max_concurrent_queries: int = Field(DEFAULT_MAX_CONCURRENT_QUERIES, ge=1)
    jaeger_url: str | None = "http://127.0.0.1:16686"
    store_url: str | None = None
    delivery: DeliveryConfig = DeliveryConfig()
    heartbeat_url: str | None = Field(None, pattern=r"^https?://")
    heartbeat_method: Literal["GET", "POST"] = "GET"
    heartbeat_interval_seconds: float = Field(60.0, gt=0, le=86400)
    heartbeat_timeout_seconds: float = Field(10.0, gt=0, le=300)
    # P2: the daily summary (send time and zone, reports dir); its Prometheus is ``prometheus_url`` unless set.
    daily_summary: DailySummaryConfig = DailySummaryConfig()

    @field_validator("store_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ArgumentError:
            raise ValueError("not a SQLAlchemy database URL (e.g. 'sqlite:///otel-monitor.db')") from None
        return value

    def outbox_url(self, quota_store_url: str) -> str:
        """Where the delivery outbox lives: ``store_url``, else the quota store's database."""
        return self.store_url or quota_store_url


class MonitorConfig(BaseModel):
    """The whole file: unknown keys anywhere are errors."""

    model_config = ConfigDict(extra="forbid")
    environment: Literal["development", "staging", "production"] = "development"
    server: ServerConfig = ServerConfig()
    telemetry: MonitorTelemetryConfig = MonitorTelemetryConfig()
    health: HealthConfig = HealthConfig()
    quota: QuotaConfig = QuotaConfig()
    alerting: AlertingConfig = AlertingConfig()

"""The monitor service's configuration file (`otel-monitor serve --config FILE`): one model, strictly validated and
resolved once at load (defaults that follow other settings are filled in here, not while wiring the service)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.monitor.alerting.delivery.daily_summary import DailySummaryConfig
from otel_monitor.monitor.alerting.escalation import DEFAULT_ESCALATION, EscalationPolicy, policies_with_steps
from otel_monitor.monitor.alerting.evaluate.sources import DEFAULT_MAX_CONCURRENT_QUERIES
from otel_monitor.monitor.alerting.model import Priority, Rule
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.silences.windows import MaintenanceWindow
from otel_monitor.monitor.auth.config import AuthConfig
from otel_monitor.monitor.budgets import BudgetsConfig
from otel_monitor.monitor.health.config import HealthConfig
from otel_monitor.monitor.leadership import HaConfig
from otel_monitor.monitor.quota.config import QuotaConfig

__all__ = [
    "MonitorConfig",
    "ServerConfig",
    "MonitorTelemetryConfig",
    "AlertingConfig",
    "Finding",
    "unreachable_alerts",
    "untracked_signals",
]

# (where in the config file, what is wrong): a check across sections, placed on a line by config_file.problem_at.
Finding = tuple[tuple[str, ...], str]
_ROUTING = ("alerting", "delivery", "routing")


class ServerConfig(BaseModel):
    """Where the monitor's HTTP API listens, and ``public_url``: where people reach it (the links in notifications,
    e.g. to acknowledge a P0); None: ``http://{host}:{port}``."""

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = Field(None, pattern=r"^https?://")

    @property
    def public_base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


class MonitorTelemetryConfig(BaseModel):
    """How the monitor reports itself: its health and quota gauges go to the collector like the backend's metrics.
    These settings win over the OTEL_MONITOR_* and OTEL_* variables of the same names (``telemetry_settings``)."""

    model_config = ConfigDict(extra="forbid")
    service_name: str = "otel-monitor"
    otlp_endpoint: str = "http://127.0.0.1:4318"
    metric_export_interval_seconds: float = Field(10.0, gt=0, le=3600)
    log_dir: str = "logs"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AlertingConfig(BaseModel):
    """The alert rules, the back ends they read and where notifications go. ``rules_file`` is relative to the
    config file. Evaluation and delivery run only when ``enabled``; ``store_url`` holds the delivery outbox, the
    alerts, the incidents and the P1 digest entries (None: the quota store's database, filled in by MonitorConfig).
    ``heartbeat_url``, when set, is pinged with ``heartbeat_method`` every ``heartbeat_interval_seconds`` (a dead
    man's switch for an outside watcher).
    At most ``max_concurrent_queries`` PromQL queries of the rules are in flight at ``prometheus_url`` at once."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    rules_file: str | None = None
    prometheus_url: str = "http://127.0.0.1:9090"
    max_concurrent_queries: int = Field(DEFAULT_MAX_CONCURRENT_QUERIES, ge=1)
    jaeger_url: str | None = "http://127.0.0.1:16686"
    # VictoriaLogs (its UI and query API): alerts about a failing call link to its log lines there; None: no link.
    logs_url: str | None = Field(None, pattern=r"^https?://")
    store_url: str | None = None
    delivery: DeliveryConfig = DeliveryConfig()
    heartbeat_url: str | None = Field(None, pattern=r"^https?://")
    heartbeat_method: Literal["GET", "POST"] = "GET"
    heartbeat_interval_seconds: float = Field(60.0, gt=0, le=86400)
    heartbeat_timeout_seconds: float = Field(10.0, gt=0, le=300)
    # P1: the digest of every P1 transition of a period, sent at the period's end: 1 to 60 minutes dividing the day.
    # A P1 reaches its channels within detection + period (docs/ALERT_TIMING.md): keep it well under an hour.
    digest_period_minutes: int = Field(30, ge=1, le=60)
    # P2: the daily summary (send time and zone, reports dir); its Prometheus is ``prometheus_url`` unless set
    # (filled in at load).
    daily_summary: DailySummaryConfig = DailySummaryConfig()
    # Recurring windows holding the notifications of the alerts they match, like a silence (none by default).
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()

    @field_validator("maintenance_windows")
    @classmethod
    def _window_names_unique(cls, value: tuple[MaintenanceWindow, ...]) -> tuple[MaintenanceWindow, ...]:
        names = [window.name for window in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"window names must be unique; repeated: {repeated}")
        return value

    # Repeat and escalation of firing alerts nobody acknowledged, per priority (a priority left out: neither).
    escalation: dict[Priority, EscalationPolicy] = Field(default_factory=lambda: dict(DEFAULT_ESCALATION))

    @model_validator(mode="after")
    def _escalation_names_known_channels(self) -> AlertingConfig:
        for where, step in policies_with_steps(self.escalation):
            for index, name in enumerate(step.channels):
                if name not in self.delivery.channels:
                    known = ", ".join(sorted(self.delivery.channels)) or "none"
                    raise ValueError(f"escalation.{where}.channels[{index}]: unknown channel {name!r} (known: {known})")
        return self

    @field_validator("digest_period_minutes")
    @classmethod
    def _divides_the_day(cls, value: int) -> int:
        if (24 * 60) % value:
            raise ValueError(
                f"must divide the day (1440 minutes) so periods start at the same times daily: "
                f"5, 10, 15, 20, 30 or 60, not {value}"
            )
        return value

    @property
    def digest_period(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.digest_period_minutes)

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

    @model_validator(mode="after")
    def _summary_reads_the_rules_prometheus(self) -> AlertingConfig:
        if "prometheus_url" not in self.daily_summary.model_fields_set:
            self.daily_summary = self.daily_summary.model_copy(update={"prometheus_url": self.prometheus_url})
        return self


class MonitorConfig(BaseModel):
    """The whole file: unknown keys anywhere are errors. Once loaded, ``alerting.store_url`` is always set (the
    quota store's database unless the file names one) and ``alerting.daily_summary.prometheus_url`` too."""

    model_config = ConfigDict(extra="forbid")
    environment: Literal["development", "staging", "production"] = "development"
    server: ServerConfig = ServerConfig()
    telemetry: MonitorTelemetryConfig = MonitorTelemetryConfig()
    health: HealthConfig = HealthConfig()
    quota: QuotaConfig = QuotaConfig()
    budgets: BudgetsConfig = BudgetsConfig()  # spend budgets, read from quota.redis_url
    alerting: AlertingConfig = AlertingConfig()
    auth: AuthConfig = AuthConfig()
    ha: HaConfig = HaConfig()

    @model_validator(mode="after")
    def _alerting_stores_default_to_the_quota_store(self) -> MonitorConfig:
        if self.alerting.store_url is None:  # a copy: a section passed in by the caller stays as it was
            self.alerting = self.alerting.model_copy(update={"store_url": self.quota.store_url})
        return self

    def telemetry_settings(self) -> TelemetrySettings:
        """The library settings of the monitor's own telemetry: the ``telemetry`` section and ``environment``, the
        rest from the environment (OTEL_MONITOR_*, then OTEL_*); raises pydantic's ValidationError naming the
        setting when one of those variables is invalid."""
        return TelemetrySettings(
            service_name=self.telemetry.service_name,
            environment=self.environment,
            otlp_endpoint=self.telemetry.otlp_endpoint,
            metric_export_interval_seconds=self.telemetry.metric_export_interval_seconds,
            log_dir=self.telemetry.log_dir,
            log_level=self.telemetry.log_level,
        )


def unreachable_alerts(alerting: AlertingConfig, rules: Sequence[Rule] | None) -> list[Finding]:
    """Why alerts would reach nobody with alerting on: no rules file or no rules (nothing evaluated), no P0 channel
    (every P0 is dropped; `P0: []` included, since a P0 must reach a person), or a P1/P2 with rules and no routing.
    P1 and P2 may be dropped on purpose by routing them to no channel explicitly: `P1: []`. ``rules`` None: the
    rules file did not load (its own problems are reported), so only the P0 route is checked."""
    if not alerting.enabled:
        return []
    found: list[Finding] = []
    if not alerting.rules_file:
        found.append(
            (
                ("alerting", "rules_file"),
                "alerting is enabled but names no rules file, so nothing would be "
                "evaluated: set it (e.g. config/alert-rules.yaml) or set alerting.enabled: false",
            )
        )
    elif rules is not None and not rules:
        found.append((("alerting", "rules_file"), "the rules file has no rules, so nothing would be evaluated"))
    routing = alerting.delivery.routing
    if not routing.get(Priority.P0):
        found.append(
            (
                (*_ROUTING, "P0"),
                "alerting is enabled but no channel is routed for P0, so every P0 alert "
                "would reach nobody: route P0 to at least one of alerting.delivery.channels",
            )
        )
    for priority in (Priority.P1, Priority.P2):
        count = sum(rule.priority is priority for rule in rules or ())
        if count and priority not in routing:
            found.append(
                (
                    (*_ROUTING, priority.value),
                    f"{count} {priority.value} rule(s) but no channel routed for {priority.value}, so they "
                    f"would reach nobody: route {priority.value} to a channel, or write "
                    f"`{priority.value}: []` to drop them on purpose",
                )
            )
    return found


def untracked_signals(config: MonitorConfig, rules: Sequence[Rule]) -> list[Finding]:
    """What the monitor would silently never see with this config (warnings, not errors: it still starts).

    Gemini requests and YouTube units are counted by the instrumented backend in Redis, and the failure streaks
    of ``streak.*`` checks and the active users live there too: without ``quota.redis_url`` none of them can be
    read, nor the spend the ``budgets`` watch."""
    if config.quota.redis_url:
        return []
    found: list[Finding] = [
        (
            ("quota", "redis_url"),
            "Gemini and YouTube quotas cannot be tracked (they stay "
            "unknown and never alert), nor the gauges video_active_users and "
            "external_api_consecutive_failures exported: the backend keeps them in Redis; set "
            "quota.redis_url to the Redis of the backend's OTEL_MONITOR_REDIS_URL",
        )
    ]
    if config.budgets.daily or config.budgets.monthly:
        found.append(
            (
                ("quota", "redis_url"),
                "budgets are set but never watched (no spend is read, shown or alerted on): the backend counts "
                "its spend in Redis; set quota.redis_url to the Redis of the backend's OTEL_MONITOR_REDIS_URL",
            )
        )
    streak_rules = [rule.name for rule in rules if rule.source == "check" and rule.expr.strip().startswith("streak.")]
    if config.alerting.enabled and streak_rules:
        found.append(
            (
                ("quota", "redis_url"),
                f"rules {', '.join(streak_rules)} (streak.*) can never fire: failure "
                "streaks are read from the backend's Redis; set quota.redis_url to the Redis of the "
                "backend's OTEL_MONITOR_REDIS_URL",
            )
        )
    return found

"""Where notifications go: channel configs (strict, secrets as SecretStr), routing by priority, and build_notifiers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Literal, TextIO

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from sentry_sdk.utils import BadDsn, Dsn

from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.notifiers import (
    AlertmanagerNotifier,
    ConsoleNotifier,
    DiscordNotifier,
    EmailNotifier,
    LogFileNotifier,
    Notifier,
    PagerDutyNotifier,
    SentryNotifier,
    SlackNotifier,
    WebhookNotifier,
    WebSocketHub,
    WebSocketNotifier,
)
from otel_monitor.monitor.alerting.notifiers.alertmanager import DEFAULT_RESEND_INTERVAL_SECONDS
from otel_monitor.monitor.alerting.notifiers.pagerduty import EVENTS_URL
from otel_monitor.monitor.alerting.notifiers.webhook import WebhookFormat
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber
from otel_monitor.logs.logger import StructuredLogger

__all__ = [
    "ConsoleChannel", "LogFileChannel", "WebhookChannel", "SlackChannel", "DiscordChannel", "PagerDutyChannel",
    "AlertmanagerChannel", "EmailChannel", "WebSocketChannel", "SentryChannel", "ChannelConfig", "RetryPolicy", "DeliveryConfig", "build_notifiers",
    "alertmanager_notifier",
]

_CHANNEL_NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A delivery that takes longer is abandoned and retried; it never holds up another channel.
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    # Deliveries in flight at once on this channel.
    max_concurrency: int = Field(4, ge=1, le=64)


class ConsoleChannel(_Channel):
    type: Literal["console"]


class LogFileChannel(_Channel):
    type: Literal["log_file"]
    logger: str = "otel_monitor.alerts"


class WebhookChannel(_Channel):
    """``format``: our own payload (``otel-monitor``) or Alertmanager's webhook payload (``alertmanager``, version
    4, for receivers written for Alertmanager; ``external_url`` is its ``externalURL``)."""

    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    format: WebhookFormat = "otel-monitor"
    external_url: str | None = Field(None, pattern=r"^https?://")

    @field_validator("external_url")
    @classmethod
    def _external_url_needs_alertmanager_format(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is not None and info.data.get("format") != "alertmanager":
            raise ValueError("only the alertmanager format has an external URL (set format: alertmanager)")
        return url


class SlackChannel(_Channel):
    type: Literal["slack"]
    url: SecretStr


class DiscordChannel(_Channel):
    type: Literal["discord"]
    url: SecretStr


class PagerDutyChannel(_Channel):
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = EVENTS_URL
    source: str = "otel-monitor"


class AlertmanagerChannel(_Channel):
    """Firing alerts are posted again every ``resend_interval_seconds`` while they fire, each valid for
    ENDS_AT_INTERVALS intervals (Alertmanager ends an alert nobody posts again, whatever its resolve_timeout)."""

    type: Literal["alertmanager"]
    url: str = Field(pattern=r"^https?://")
    resend_interval_seconds: float = Field(DEFAULT_RESEND_INTERVAL_SECONDS, ge=1, le=3600)


class EmailChannel(_Channel):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(min_length=3, pattern=r"@")
    recipients: tuple[Annotated[str, Field(pattern=r"@")], ...] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False


class WebSocketChannel(_Channel):
    """Push to the clients connected to ``/api/v1/alerts/ws`` at that moment (the others miss it)."""

    type: Literal["websocket"]


class SentryChannel(_Channel):
    """One Sentry issue per alert fingerprint; ``environment`` is the Sentry environment of the events."""

    type: Literal["sentry"]
    dsn: SecretStr
    environment: str = Field("production", min_length=1)

    @field_validator("dsn")
    @classmethod
    def _dsn_parses(cls, dsn: SecretStr) -> SecretStr:
        try:
            Dsn(dsn.get_secret_value())
        except BadDsn as exc:  # the message quotes the path only, never the key
            raise ValueError(f"invalid Sentry DSN: {exc.args[0].split('(')[0].strip()}") from None
        return dsn


ChannelConfig = Annotated[
    ConsoleChannel | LogFileChannel | WebhookChannel | SlackChannel | DiscordChannel | PagerDutyChannel
    | AlertmanagerChannel | EmailChannel | WebSocketChannel | SentryChannel,
    Field(discriminator="type"),
]


class RetryPolicy(BaseModel):
    """Exponential backoff from ``initial`` doubling to ``max``; retryable failures are given up after ``max_age``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_backoff_seconds: float = Field(1.0, gt=0)
    max_backoff_seconds: float = Field(300.0, gt=0)
    max_age_seconds: float = Field(24 * 3600.0, gt=0)

    def backoff(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        return min(self.initial_backoff_seconds * 2 ** max(attempts - 1, 0), self.max_backoff_seconds)


class DeliveryConfig(BaseModel):
    """``channels`` by name, and ``routing``: the channel names each priority goes to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[Annotated[str, Field(pattern=_CHANNEL_NAME)], ChannelConfig] = Field(default_factory=dict)
    routing: dict[Priority, tuple[str, ...]] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()

    @model_validator(mode="after")
    def _routing_names_known_channels(self) -> DeliveryConfig:
        for priority, names in self.routing.items():
            for index, name in enumerate(names):
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none"
                    raise ValueError(f"routing.{priority.value}[{index}]: unknown channel {name!r} (known: {known})")
        return self

    def channels_for(self, priority: Priority) -> tuple[str, ...]:
        return self.routing.get(priority, ())


def alertmanager_notifier(name: str, channel: AlertmanagerChannel, *, client: httpx.AsyncClient | None = None,
                          scrubber: SecretScrubber = default_scrubber,
                          clock: Callable[[], dt.datetime] | None = None) -> AlertmanagerNotifier:
    """The notifier of one ``alertmanager`` channel (the Dispatcher's and the refresher's are built alike);
    ``clock`` stamps ``endsAt`` (default: the wall clock)."""
    return AlertmanagerNotifier(name, channel.url, resend_interval_seconds=channel.resend_interval_seconds,
                                client=client, timeout=channel.timeout_seconds, scrubber=scrubber,
                                **({"clock": clock} if clock is not None else {}))


def build_notifiers(config: DeliveryConfig, *, client: httpx.AsyncClient | None = None,
                    scrubber: SecretScrubber = default_scrubber, stream: TextIO | None = None,
                    logger: StructuredLogger | None = None,
                    websocket_hub: WebSocketHub | None = None) -> dict[str, Notifier]:
    """The one mapping from channel configs to notifiers; every secret is registered with ``scrubber`` first.
    ``websocket`` channels publish to ``websocket_hub`` (the one ``/api/v1/alerts/ws`` serves; a new one if
    none is given, reachable as the notifier's ``hub``)."""
    notifiers: dict[str, Notifier] = {}
    for name, channel in config.channels.items():
        http = {"client": client, "timeout": channel.timeout_seconds, "scrubber": scrubber}
        match channel:
            case ConsoleChannel():
                notifiers[name] = ConsoleNotifier(name, stream=stream, scrubber=scrubber)
            case LogFileChannel():
                notifiers[name] = LogFileNotifier(name, logger=logger or StructuredLogger(channel.logger))
            case WebhookChannel():
                headers = {key: value.get_secret_value() for key, value in channel.headers.items()}
                notifiers[name] = WebhookNotifier(name, channel.url.get_secret_value(), headers=headers,
                                                  payload_format=channel.format,
                                                  external_url=channel.external_url or "", **http)
            case SlackChannel():
                notifiers[name] = SlackNotifier(name, channel.url.get_secret_value(), **http)
            case DiscordChannel():
                notifiers[name] = DiscordNotifier(name, channel.url.get_secret_value(), **http)
            case PagerDutyChannel():
                notifiers[name] = PagerDutyNotifier(name, channel.routing_key.get_secret_value(), url=channel.url,
                                                    source=channel.source, **http)
            case AlertmanagerChannel():
                notifiers[name] = alertmanager_notifier(name, channel, client=client, scrubber=scrubber)
            case EmailChannel():
                password = channel.password.get_secret_value() if channel.password else None
                notifiers[name] = EmailNotifier(name, channel.host, channel.port, channel.sender,
                                                channel.recipients, username=channel.username, password=password,
                                                starttls=channel.starttls, timeout=channel.timeout_seconds,
                                                scrubber=scrubber)
            case WebSocketChannel():
                websocket_hub = websocket_hub or WebSocketHub()
                notifiers[name] = WebSocketNotifier(name, websocket_hub, scrubber=scrubber)
            case SentryChannel():
                notifiers[name] = SentryNotifier(name, channel.dsn.get_secret_value(),
                                                 environment=channel.environment, **http)
    return notifiers

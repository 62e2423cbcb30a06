"""Receivers of alert notifications, one module each holding its channel config and its notifier; every notifier
answers whether a failed delivery is retryable. ``build_notifiers`` is the one mapping from channel configs to
notifiers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TextIO

import httpx
from pydantic import Field

from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.notification import Notifier
from otel_monitor.monitor.alerting.notifiers._http import HttpOptions
from otel_monitor.monitor.alerting.notifiers._labels import labels_and_annotations
from otel_monitor.monitor.alerting.notifiers.alertmanager import (
    AlertmanagerChannel,
    AlertmanagerNotifier,
    alertmanager_alert,
    alertmanager_notifier,
)
from otel_monitor.monitor.alerting.notifiers.channel import CHANNEL_NAME, ChannelSettings
from otel_monitor.monitor.alerting.notifiers.console import ConsoleChannel, ConsoleNotifier, format_console_line
from otel_monitor.monitor.alerting.notifiers.discord import DiscordChannel, DiscordNotifier, discord_payload
from otel_monitor.monitor.alerting.notifiers.email import EmailChannel, EmailNotifier, email_message
from otel_monitor.monitor.alerting.notifiers.log_file import LogFileChannel, LogFileNotifier
from otel_monitor.monitor.alerting.notifiers.pagerduty import PagerDutyChannel, PagerDutyNotifier, pagerduty_event
from otel_monitor.monitor.alerting.notifiers.sentry import SentryChannel, SentryNotifier, sentry_event
from otel_monitor.monitor.alerting.notifiers.slack import SlackChannel, SlackNotifier, slack_payload
from otel_monitor.monitor.alerting.notifiers.webhook import (
    WebhookChannel,
    WebhookNotifier,
    alertmanager_webhook_payload,
    webhook_payload,
)
from otel_monitor.monitor.alerting.notifiers.websocket import (
    WebSocketChannel,
    WebSocketHub,
    WebSocketNotifier,
    serve_subscriber,
)
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

if TYPE_CHECKING:  # the routing config holds the channel configs defined here
    from otel_monitor.monitor.alerting.routing import DeliveryConfig

__all__ = [
    "ChannelConfig",
    "ChannelSettings",
    "CHANNEL_NAME",
    "build_notifiers",
    "ConsoleChannel",
    "LogFileChannel",
    "WebhookChannel",
    "SlackChannel",
    "DiscordChannel",
    "PagerDutyChannel",
    "AlertmanagerChannel",
    "EmailChannel",
    "WebSocketChannel",
    "SentryChannel",
    "ConsoleNotifier",
    "LogFileNotifier",
    "WebhookNotifier",
    "SlackNotifier",
    "DiscordNotifier",
    "PagerDutyNotifier",
    "AlertmanagerNotifier",
    "EmailNotifier",
    "WebSocketNotifier",
    "SentryNotifier",
    "WebSocketHub",
    "serve_subscriber",
    "alertmanager_notifier",
    "format_console_line",
    "webhook_payload",
    "slack_payload",
    "discord_payload",
    "pagerduty_event",
    "alertmanager_alert",
    "labels_and_annotations",
    "alertmanager_webhook_payload",
    "email_message",
    "sentry_event",
]

ChannelConfig = Annotated[
    ConsoleChannel
    | LogFileChannel
    | WebhookChannel
    | SlackChannel
    | DiscordChannel
    | PagerDutyChannel
    | AlertmanagerChannel
    | EmailChannel
    | WebSocketChannel
    | SentryChannel,
    Field(discriminator="type"),
]


def build_notifiers(
    config: DeliveryConfig,
    *,
    client: httpx.AsyncClient | None = None,
    scrubber: SecretScrubber = default_scrubber,
    stream: TextIO | None = None,
    logger: StructuredLogger | None = None,
    websocket_hub: WebSocketHub | None = None,
) -> dict[str, Notifier]:
    """The one mapping from channel configs to notifiers; every secret is registered with ``scrubber`` first.
    ``websocket`` channels publish to ``websocket_hub`` (the one ``/api/v1/alerts/ws`` serves; a new one if none is
    given, reachable as the notifier's ``hub``)."""
    notifiers: dict[str, Notifier] = {}
    for name, channel in config.channels.items():
        http: HttpOptions = {"client": client, "timeout": channel.timeout_seconds, "scrubber": scrubber}
        match channel:
            case ConsoleChannel():
                notifiers[name] = ConsoleNotifier(name, stream=stream, scrubber=scrubber)
            case LogFileChannel():
                notifiers[name] = LogFileNotifier(name, logger=logger or StructuredLogger(channel.logger))
            case WebhookChannel():
                headers = {key: value.get_secret_value() for key, value in channel.headers.items()}
                notifiers[name] = WebhookNotifier(
                    name,
                    channel.url.get_secret_value(),
                    headers=headers,
                    payload_format=channel.format,
                    external_url=channel.external_url or "",
                    **http,
                )
            case SlackChannel():
                notifiers[name] = SlackNotifier(name, channel.url.get_secret_value(), **http)
            case DiscordChannel():
                notifiers[name] = DiscordNotifier(name, channel.url.get_secret_value(), **http)
            case PagerDutyChannel():
                notifiers[name] = PagerDutyNotifier(
                    name, channel.routing_key.get_secret_value(), url=channel.url, source=channel.source, **http
                )
            case AlertmanagerChannel():
                notifiers[name] = alertmanager_notifier(name, channel, client=client, scrubber=scrubber)
            case EmailChannel():
                password = channel.password.get_secret_value() if channel.password else None
                notifiers[name] = EmailNotifier(
                    name,
                    channel.host,
                    channel.port,
                    channel.sender,
                    channel.recipients,
                    username=channel.username,
                    password=password,
                    starttls=channel.starttls,
                    timeout=channel.timeout_seconds,
                    scrubber=scrubber,
                )
            case WebSocketChannel():
                websocket_hub = websocket_hub or WebSocketHub()
                notifiers[name] = WebSocketNotifier(name, websocket_hub, scrubber=scrubber)
            case SentryChannel():
                notifiers[name] = SentryNotifier(
                    name, channel.dsn.get_secret_value(), environment=channel.environment, **http
                )
    return notifiers

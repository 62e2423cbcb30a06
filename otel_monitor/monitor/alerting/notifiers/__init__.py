"""Receivers of alert notifications, one module each; every one answers whether a failed delivery is retryable."""

from otel_monitor.monitor.alerting.notifiers.alertmanager import AlertmanagerNotifier, alertmanager_alert, labels_and_annotations
from otel_monitor.monitor.alerting.notifiers.console import ConsoleNotifier, format_console_line
from otel_monitor.monitor.alerting.notifiers.discord import DiscordNotifier, discord_payload
from otel_monitor.monitor.alerting.notifiers.email import EmailNotifier, email_message
from otel_monitor.monitor.alerting.notifiers.http_status import classify_status, classify_transport_error
from otel_monitor.monitor.alerting.notifiers.log_file import LogFileNotifier
from otel_monitor.monitor.alerting.notifiers.notification import (
    DeliveryResult,
    Notification,
    Notifier,
    Transition,
    notification_id,
)
from otel_monitor.monitor.alerting.notifiers.pagerduty import PagerDutyNotifier, pagerduty_event
from otel_monitor.monitor.alerting.notifiers.sentry import SentryNotifier, sentry_event
from otel_monitor.monitor.alerting.notifiers.slack import SlackNotifier, slack_payload
from otel_monitor.monitor.alerting.notifiers.webhook import WebhookNotifier, alertmanager_webhook_payload, webhook_payload
from otel_monitor.monitor.alerting.notifiers.websocket import WebSocketHub, WebSocketNotifier, serve_subscriber

__all__ = [
    "Notifier", "Notification", "DeliveryResult", "Transition", "notification_id",
    "classify_status", "classify_transport_error",
    "ConsoleNotifier", "LogFileNotifier", "WebhookNotifier", "SlackNotifier", "DiscordNotifier",
    "PagerDutyNotifier", "AlertmanagerNotifier", "EmailNotifier", "email_message",
    "format_console_line", "webhook_payload", "slack_payload", "discord_payload", "pagerduty_event",
    "alertmanager_alert", "labels_and_annotations", "alertmanager_webhook_payload", "WebSocketHub", "WebSocketNotifier", "serve_subscriber", "SentryNotifier", "sentry_event",
]

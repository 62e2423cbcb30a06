"""Discord webhooks: ``{"content", "embeds"}``, one embed per notification, coloured by priority or resolution."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers._http import HttpReceiver, truncate
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings

__all__ = ["DiscordChannel", "DiscordNotifier", "discord_payload"]

_COLOURS = {Priority.P0: 0xE01E5A, Priority.P1: 0xECB22E, Priority.P2: 0x36C5F0}
_RESOLVED_COLOUR = 0x2EB67D


def discord_payload(notification: Notification) -> dict[str, object]:
    """Discord's limits apply: content 2000, title 256, description 4096, field values 1024 characters."""
    alert = notification.alert
    details = notification.details()
    fields = [
        {"name": "Priority", "value": alert.priority.value, "inline": True},
        {"name": "Error code", "value": alert.error_code, "inline": True},
        {"name": "Service", "value": str(details.get("service", "-")), "inline": True},
        {"name": "Action required", "value": truncate(alert.action_required, 1024), "inline": False},
        {"name": "Runbook", "value": truncate(alert.runbook, 1024), "inline": False},
    ]
    if alert.trace_id:
        value = f"[{alert.trace_id}]({alert.jaeger_url})" if alert.jaeger_url else alert.trace_id
        fields.append({"name": "Trace", "value": truncate(value, 1024), "inline": False})
    if alert.logs_url:
        fields.append({"name": "Logs", "value": truncate(f"[log lines]({alert.logs_url})", 1024), "inline": False})
    if notification.ack_url:
        fields.append({"name": "Acknowledge", "value": truncate(notification.ack_url, 1024), "inline": False})
    embed: dict[str, object] = {
        "title": truncate(notification.title, 256),
        "description": truncate(alert.summary, 4096),
        "color": _RESOLVED_COLOUR if notification.resolved else _COLOURS[alert.priority],
        "fields": fields,
    }
    moment = alert.ends_at if notification.resolved else alert.starts_at
    if moment is not None:
        embed["timestamp"] = moment.isoformat()
    if alert.jaeger_url:
        embed["url"] = alert.jaeger_url
    return {"content": truncate(f"{notification.title} ({alert.error_code})", 2000), "embeds": [embed]}


class DiscordChannel(ChannelSettings):
    type: Literal["discord"]
    url: SecretStr


class DiscordNotifier(HttpReceiver):
    """Posts :func:`discord_payload` to the webhook URL (the URL is the secret)."""

    async def notify(self, notification: Notification) -> DeliveryResult:
        return await self._post(discord_payload(notification))

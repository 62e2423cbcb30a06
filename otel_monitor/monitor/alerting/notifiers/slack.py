"""Slack incoming webhooks: ``{"text", "blocks"}`` with a header, the alert's fields and its trace link."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers._http import HttpReceiver, truncate
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings

__all__ = ["SlackChannel", "SlackNotifier", "slack_payload"]

_EMOJI = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": truncate(f"*{label}*\n{value}", 2000)}


def slack_payload(notification: Notification) -> dict[str, object]:
    """The message: ``text`` is the fallback shown in notifications; ``blocks`` the formatted body."""
    alert = notification.alert
    details = notification.details()
    fields = [
        _field("Priority", alert.priority.value),
        _field("Error code", alert.error_code),
        _field("Service", str(details.get("service", "-"))),
        _field("Status", notification.transition),
    ]
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(notification.title, 150)}},
        {"type": "section", "fields": fields},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": truncate(f"*Action required*: {alert.action_required}\n*Runbook*: {alert.runbook}", 3000),
            },
        },
    ]
    if alert.trace_id:
        trace = f"<{alert.jaeger_url}|{alert.trace_id}>" if alert.jaeger_url else alert.trace_id
        elements = [{"type": "mrkdwn", "text": f"Trace: {trace}"}]
        if alert.logs_url:
            elements.append({"type": "mrkdwn", "text": f"<{alert.logs_url}|Logs>"})
        blocks.append({"type": "context", "elements": elements})
    if notification.ack_url:
        ack = f"<{notification.ack_url}|Acknowledge>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ack}]})
    text = f"{_EMOJI[notification.transition]} {notification.title} ({alert.error_code})"
    return {"text": truncate(text, 3000), "blocks": blocks}


class SlackChannel(ChannelSettings):
    type: Literal["slack"]
    url: SecretStr


class SlackNotifier(HttpReceiver):
    """Posts :func:`slack_payload` to the incoming-webhook URL (the URL is the secret)."""

    async def notify(self, notification: Notification) -> DeliveryResult:
        return await self._post(slack_payload(notification))

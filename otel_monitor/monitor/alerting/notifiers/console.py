"""The console receiver: one readable line per notification on stderr (development)."""

from __future__ import annotations

import sys
from typing import Literal, TextIO

from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["ConsoleChannel", "ConsoleNotifier", "format_console_line"]


def format_console_line(notification: Notification) -> str:
    """``[P0 FIRING] GEMINI_INVALID_API_KEY service=gemini: API Key Invalid | action: ... | runbook: ...``, then
    ``| trace: ID JAEGER_URL``, ``| logs: URL``, ``| repeat: 2`` and ``| ack: URL`` when the notification has them."""
    alert = notification.alert
    parts = [
        f"[{alert.priority.value} {notification.transition.upper()}] {alert.error_code}"
        f" service={alert.service or '-'}: {alert.summary}",
        f"action: {alert.action_required}",
        f"runbook: {alert.runbook}",
    ]
    if alert.trace_id:
        parts.append(f"trace: {alert.trace_id}" + (f" {alert.jaeger_url}" if alert.jaeger_url else ""))
    if alert.logs_url:
        parts.append(f"logs: {alert.logs_url}")
    if alert.inhibited:
        parts.append("holding back: " + ", ".join(alert.inhibited))
    if notification.repeat:
        parts.append(f"repeat: {notification.repeat}")
    if notification.ack_url:
        parts.append(f"ack: {notification.ack_url}")
    return " | ".join(parts)


class ConsoleChannel(ChannelSettings):
    type: Literal["console"]


class ConsoleNotifier:
    """Writes each notification as one line to a stream (stderr unless given)."""

    def __init__(
        self, name: str = "console", *, stream: TextIO | None = None, scrubber: SecretScrubber = default_scrubber
    ) -> None:
        self.name = name
        self._stream = stream
        self._scrubber = scrubber

    async def notify(self, notification: Notification) -> DeliveryResult:
        stream = self._stream if self._stream is not None else sys.stderr
        try:
            stream.write(self._scrubber.scrub_text(format_console_line(notification)) + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # closed or broken stream: a later attempt may find it back
            return DeliveryResult(ok=False, retryable=True, detail=f"console write failed: {type(exc).__name__}")
        return DeliveryResult(ok=True)

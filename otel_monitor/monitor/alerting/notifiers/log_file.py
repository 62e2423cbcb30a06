"""The log-file receiver: one JSON line per alert (ERROR for P0, WARNING for P1 and P2 alerts, INFO for the
daily summary and for resolved notifications) via StructuredLogger."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings

__all__ = ["LogFileChannel", "LogFileNotifier", "LOG_LEVELS", "ALERT_LOGGER", "log_level", "log_notification"]

ALERT_LOGGER = "otel_monitor.alerts"
# P2 alerts are warnings (metric thresholds crossed, nothing down): WARNING, as P1; the P2 daily summary is a
# report: INFO.
LOG_LEVELS = {Priority.P0: logging.ERROR, Priority.P1: logging.WARNING, Priority.P2: logging.WARNING}


def log_level(notification: Notification) -> int:
    """ERROR / WARNING / WARNING by priority when firing; INFO once resolved and for the daily summary."""
    if notification.resolved or notification.report is not None:
        return logging.INFO
    return LOG_LEVELS[notification.alert.priority]


def log_notification(
    logger: StructuredLogger,
    notification: Notification,
    *,
    level: int | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """Logs ``{"message":"P0 Alert: ...","alert_priority":"P0","error_code":...,"details":{...}}``; ``details``
    adds fields to the notification's own (e.g. a quota's remaining share)."""
    alert = notification.alert
    logger.log(
        log_level(notification) if level is None else level,
        notification.title,
        alert_priority=alert.priority.value,
        error_code=alert.error_code,
        alert_state=notification.transition,
        fingerprint=alert.fingerprint,
        notification_id=notification.id,
        details={**notification.details(), **(details or {})},
    )


class LogFileChannel(ChannelSettings):
    type: Literal["log_file"]
    logger: str = ALERT_LOGGER


class LogFileNotifier:
    """Logs each notification as one alert line (``log_notification``).

    Resolved notifications are logged at INFO with ``alert_state: resolved``. The line goes through the root
    handlers ``configure_logging`` installed (``logs/app.log``), which scrub secrets.
    """

    def __init__(self, name: str = "log_file", *, logger: StructuredLogger | None = None) -> None:
        self.name = name
        self._logger = logger if logger is not None else StructuredLogger(ALERT_LOGGER)

    async def notify(self, notification: Notification) -> DeliveryResult:
        log_notification(self._logger, notification)
        return DeliveryResult(ok=True)

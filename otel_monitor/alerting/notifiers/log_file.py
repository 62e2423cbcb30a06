"""The log-file receiver: the spec's JSON alert lines (ERROR for P0, WARNING for P1, INFO for P2) via StructuredLogger."""

from __future__ import annotations

import logging

from otel_monitor.alerting.model import Priority
from otel_monitor.alerting.notifiers.notification import DeliveryResult, Notification
from otel_monitor.structured_logging import StructuredLogger

__all__ = ["LogFileNotifier", "LOG_LEVELS", "ALERT_LOGGER"]

ALERT_LOGGER = "otel_monitor.alerts"
LOG_LEVELS = {Priority.P0: logging.ERROR, Priority.P1: logging.WARNING, Priority.P2: logging.INFO}


class LogFileNotifier:
    """Logs ``{"message":"P0 Alert: ...","alert_priority":"P0","error_code":...,"details":{...}}``.

    Resolved notifications are logged at INFO with ``alert_state: resolved``. The line goes through the root
    handlers ``configure_logging`` installed (``logs/app.log``), which scrub secrets.
    """

    def __init__(self, name: str = "log_file", *, logger: StructuredLogger | None = None) -> None:
        self.name = name
        self._logger = logger if logger is not None else StructuredLogger(ALERT_LOGGER)

    async def notify(self, notification: Notification) -> DeliveryResult:
        alert = notification.alert
        level = logging.INFO if notification.resolved else LOG_LEVELS[alert.priority]
        self._logger.log(level, notification.title, alert_priority=alert.priority.value,
                         error_code=alert.error_code, alert_state=notification.transition,
                         fingerprint=alert.fingerprint, notification_id=notification.id,
                         details=notification.details())
        return DeliveryResult(ok=True)

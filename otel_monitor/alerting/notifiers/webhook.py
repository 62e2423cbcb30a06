"""The generic JSON webhook: one POST per notification, with ``Idempotency-Key`` = the notification id."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from otel_monitor.alerting.notifiers._http import DEFAULT_TIMEOUT_SECONDS, HttpReceiver
from otel_monitor.alerting.notifiers.notification import DeliveryResult, Notification
from otel_monitor.redaction import SecretScrubber, default_scrubber

__all__ = ["WebhookNotifier", "webhook_payload"]


def webhook_payload(notification: Notification) -> dict[str, object]:
    """``{"version":"1","id","status":"firing|resolved","message","alert":{...}}``."""
    alert = notification.alert
    return {
        "version": "1",
        "id": notification.id,
        "status": notification.transition,
        "message": notification.title,
        "alert": {
            "fingerprint": alert.fingerprint,
            "rule": alert.rule,
            "priority": alert.priority.value,
            "error_code": alert.error_code,
            "summary": alert.summary,
            "labels": dict(alert.labels),
            "starts_at": alert.starts_at.isoformat() if alert.starts_at else None,
            "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
            **notification.details(),
        },
    }


class WebhookNotifier(HttpReceiver):
    """POSTs :func:`webhook_payload`; extra headers (e.g. an Authorization token) are secrets."""

    def __init__(self, name: str, url: str, *, headers: Mapping[str, str] | None = None,
                 client: httpx.AsyncClient | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 scrubber: SecretScrubber = default_scrubber) -> None:
        super().__init__(name, url, client=client, timeout=timeout, scrubber=scrubber)
        self._headers = dict(headers or {})
        for value in self._headers.values():
            scrubber.register(value)
            scrubber.register(value.split()[-1] if value.split() else value)  # the token of "Bearer <token>"

    async def notify(self, notification: Notification) -> DeliveryResult:
        headers = {**self._headers, "Idempotency-Key": notification.id}
        return await self._post(webhook_payload(notification), headers)

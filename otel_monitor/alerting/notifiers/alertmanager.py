"""Prometheus Alertmanager: ``POST {base}/api/v2/alerts``; it groups, silences and dedupes by the labels."""

from __future__ import annotations

import datetime as dt

import httpx

from otel_monitor.alerting.notifiers._http import DEFAULT_TIMEOUT_SECONDS, HttpReceiver
from otel_monitor.alerting.notifiers.notification import DeliveryResult, Notification
from otel_monitor.redaction import SecretScrubber, default_scrubber

__all__ = ["AlertmanagerNotifier", "alertmanager_alert"]


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def alertmanager_alert(notification: Notification, now: dt.datetime | None = None) -> dict[str, object]:
    """One postable alert. Labels identify it (Alertmanager dedupes on them); empty values are left out."""
    alert = notification.alert
    labels = {**alert.labels, "alertname": alert.rule, "priority": alert.priority.value,
              "error_code": alert.error_code, "fingerprint": alert.fingerprint}
    if alert.service:
        labels["service"] = alert.service
    details = notification.details()
    annotations = {"summary": alert.summary, "action_required": alert.action_required, "runbook": alert.runbook}
    for key in ("trace_id", "jaeger_url"):
        if key in details:
            annotations[key] = str(details[key])
    if alert.inhibited:
        annotations["inhibited"] = ", ".join(alert.inhibited)
    posted: dict[str, object] = {"labels": {k: str(v) for k, v in labels.items() if v not in (None, "")},
                                 "annotations": annotations}
    if alert.starts_at is not None:
        posted["startsAt"] = _rfc3339(alert.starts_at)
    if notification.resolved:
        posted["endsAt"] = _rfc3339(alert.ends_at or now or dt.datetime.now(dt.timezone.utc))
    if alert.jaeger_url:
        posted["generatorURL"] = alert.jaeger_url
    return posted


class AlertmanagerNotifier(HttpReceiver):
    """Posts one alert per notification; a resolved one carries ``endsAt``.

    A firing alert is posted without ``endsAt``, so Alertmanager keeps it for its ``resolve_timeout`` (5 min by
    default) unless it is posted again: long-lived alerts must be re-posted by the caller (as Prometheus does).
    """

    def __init__(self, name: str, url: str, *, client: httpx.AsyncClient | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, scrubber: SecretScrubber = default_scrubber) -> None:
        super().__init__(name, url.rstrip("/") + "/api/v2/alerts", client=client, timeout=timeout,
                         scrubber=scrubber, url_is_secret=False)

    async def notify(self, notification: Notification) -> DeliveryResult:
        return await self._post([alertmanager_alert(notification)])

"""PagerDuty Events API v2: trigger on firing, resolve on resolution, ``dedup_key`` = the alert fingerprint."""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import SecretStr

from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers._http import DEFAULT_TIMEOUT_SECONDS, HttpReceiver, truncate
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["PagerDutyChannel", "PagerDutyNotifier", "pagerduty_event", "EVENTS_URL"]

EVENTS_URL = "https://events.pagerduty.com"


def pagerduty_event(notification: Notification, routing_key: str, source: str) -> dict[str, object]:
    """The event to enqueue; PagerDuty folds every event with one ``dedup_key`` into one incident."""
    alert = notification.alert
    event: dict[str, object] = {
        "routing_key": routing_key,
        "event_action": "resolve" if notification.resolved else "trigger",
        "dedup_key": alert.fingerprint[:255],
    }
    if notification.resolved:
        return event
    payload: dict[str, object] = {
        "summary": truncate(f"{notification.title} ({alert.error_code})", 1024),
        "source": source,
        "severity": alert.priority.severity,
        "class": alert.error_code,
        "custom_details": {"error_code": alert.error_code, "priority": alert.priority.value, **notification.details()},
    }
    if alert.service:
        payload["component"] = alert.service
    if alert.starts_at is not None:
        payload["timestamp"] = alert.starts_at.isoformat()
    event["payload"] = payload
    links = []
    if alert.jaeger_url:
        links.append({"href": alert.jaeger_url, "text": f"Jaeger trace {alert.trace_id or ''}".strip()})
    if alert.logs_url:
        links.append({"href": alert.logs_url, "text": f"Logs of trace {alert.trace_id or ''}".strip()})
    if links:
        event["links"] = links
    return event


class PagerDutyChannel(ChannelSettings):
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = EVENTS_URL
    source: str = "otel-monitor"


class PagerDutyNotifier(HttpReceiver):
    """POSTs to ``{base}/v2/enqueue``; the routing key is a secret."""

    def __init__(
        self,
        name: str,
        routing_key: str,
        *,
        url: str = EVENTS_URL,
        source: str = "otel-monitor",
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        scrubber: SecretScrubber = default_scrubber,
    ) -> None:
        super().__init__(
            name,
            url.rstrip("/") + "/v2/enqueue",
            client=client,
            timeout=timeout,
            scrubber=scrubber,
            url_is_secret=False,
        )
        self._routing_key = routing_key
        self._source = source
        scrubber.register(routing_key)

    async def notify(self, notification: Notification) -> DeliveryResult:
        return await self._post(pagerduty_event(notification, self._routing_key, self._source))

"""The generic JSON webhook: one POST per notification, with ``Idempotency-Key`` = the notification id; its body is
our own payload or, with ``format: alertmanager``, Alertmanager's webhook payload (version 4)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal, TypedDict

import httpx
from pydantic import Field, SecretStr, ValidationInfo, field_validator

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers._http import DEFAULT_TIMEOUT_SECONDS, HttpReceiver
from otel_monitor.monitor.alerting.notifiers._labels import labels_and_annotations
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["WebhookChannel", "WebhookNotifier", "WebhookFormat", "webhook_payload", "alertmanager_webhook_payload"]

WebhookFormat = Literal["otel-monitor", "alertmanager"]
# What Alertmanager writes as the end of an alert still firing (Go's zero time).
_NO_END = "0001-01-01T00:00:00Z"


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


def _common(mappings: list[dict[str, str]]) -> dict[str, str]:
    """The pairs every mapping has, with the same value."""
    first, *rest = mappings
    return {key: value for key, value in first.items() if all(other.get(key) == value for other in rest)}


def _label_set(labels: Mapping[str, str]) -> str:
    """A label set as Alertmanager prints it in a group key: ``{a="1", b="2"}`` (its pairs sorted as text)."""
    pairs = sorted(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in labels.items())
    return "{" + ", ".join(pairs) + "}"


def _label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (prometheus/common ``LabelSet.Fingerprint``: FNV-1a 64 over the
    sorted names and values, each followed by 0xff), so receivers see the id Alertmanager would give the alert."""
    digest = 0xCBF29CE484222325
    for key in sorted(labels):
        for data in (key.encode(), labels[key].encode()):
            for byte in (*data, 0xFF):
                digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


class _WebhookAlert(TypedDict):
    """One alert of Alertmanager's webhook payload."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str
    generatorURL: str
    fingerprint: str


def _webhook_alert(notification: Notification) -> _WebhookAlert:
    alert = notification.alert
    labels, annotations = labels_and_annotations(alert)
    return {
        "status": notification.transition,
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso_utc(alert.starts_at, microseconds=True) if alert.starts_at else _NO_END,
        "endsAt": iso_utc(alert.ends_at, microseconds=True) if notification.resolved and alert.ends_at else _NO_END,
        "generatorURL": alert.jaeger_url or "",
        "fingerprint": _label_fingerprint(labels),
    }


def alertmanager_webhook_payload(
    notification: Notification, receiver: str, external_url: str = ""
) -> dict[str, object]:
    """Alertmanager's webhook payload (version 4), so receivers written for Alertmanager take our notifications.

    A notification is one group: its alert, or for a P1 digest the latest transition of each alert of its period.
    The group is keyed by the labels its alerts share (one alert: all its labels, as ``group_by: ['...']``), so
    the firing and resolved notifications of an alert have the same ``groupKey``.
    """
    entries = list({entry.alert.fingerprint: entry for entry in notification.digest}.values()) or [notification]
    alerts = [_webhook_alert(entry) for entry in entries]
    common_labels = _common([alert["labels"] for alert in alerts])
    return {
        "version": "4",
        "groupKey": "{}:" + _label_set(common_labels),
        "truncatedAlerts": 0,
        "status": "firing" if any(alert["status"] == "firing" for alert in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": common_labels,
        "commonLabels": common_labels,
        "commonAnnotations": _common([alert["annotations"] for alert in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


class WebhookChannel(ChannelSettings):
    """``format``: our own payload (``otel-monitor``) or Alertmanager's webhook payload (``alertmanager``, version
    4, for receivers written for Alertmanager; ``external_url`` is its ``externalURL``)."""

    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    format: WebhookFormat = "otel-monitor"
    external_url: str | None = Field(None, pattern=r"^https?://")

    @field_validator("external_url")
    @classmethod
    def _external_url_needs_alertmanager_format(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is not None and info.data.get("format") != "alertmanager":
            raise ValueError("only the alertmanager format has an external URL (set format: alertmanager)")
        return url


class WebhookNotifier(HttpReceiver):
    """POSTs :func:`webhook_payload` (or :func:`alertmanager_webhook_payload` with ``payload_format="alertmanager"``,
    ``external_url`` as its ``externalURL``); extra headers (e.g. an Authorization token) are secrets."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        payload_format: WebhookFormat = "otel-monitor",
        external_url: str = "",
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        scrubber: SecretScrubber = default_scrubber,
    ) -> None:
        super().__init__(name, url, client=client, timeout=timeout, scrubber=scrubber)
        self._headers = dict(headers or {})
        self._format = payload_format
        self._external_url = external_url
        for value in self._headers.values():
            scrubber.register(value)
            scrubber.register(value.split()[-1] if value.split() else value)  # the token of "Bearer <token>"

    def payload(self, notification: Notification) -> dict[str, object]:
        if self._format == "alertmanager":
            return alertmanager_webhook_payload(notification, self.name, self._external_url)
        return webhook_payload(notification)

    async def notify(self, notification: Notification) -> DeliveryResult:
        headers = {**self._headers, "Idempotency-Key": notification.id}
        return await self._post(self.payload(notification), headers)

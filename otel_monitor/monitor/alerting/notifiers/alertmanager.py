"""Prometheus Alertmanager: ``POST {base}/api/v2/alerts``; it groups, silences and dedupes by the labels."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Literal

import httpx
from pydantic import Field

from otel_monitor._utc_time import iso_utc, utc_now
from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.model import Alert
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers._http import DEFAULT_TIMEOUT_SECONDS, HttpReceiver
from otel_monitor.monitor.alerting.notifiers._labels import labels_and_annotations
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = [
    "AlertmanagerChannel",
    "alertmanager_notifier",
    "AlertmanagerNotifier",
    "alertmanager_alert",
    "DEFAULT_RESEND_INTERVAL_SECONDS",
    "ENDS_AT_INTERVALS",
]

# How often a firing alert is posted again (alertmanager_refresh), as Prometheus' --rules.alert.resend-delay.
DEFAULT_RESEND_INTERVAL_SECONDS = 60.0
# A firing alert's endsAt lies this many resend intervals ahead (Prometheus: 4 x max(resend delay, evaluation
# interval)): three refreshes in a row may fail before Alertmanager ends an alert that still fires.
ENDS_AT_INTERVALS = 4


def alertmanager_alert(
    notification: Notification,
    now: dt.datetime,
    *,
    valid_seconds: float = ENDS_AT_INTERVALS * DEFAULT_RESEND_INTERVAL_SECONDS,
) -> dict[str, object]:
    """One postable alert. Firing: ``endsAt`` = ``now`` + ``valid_seconds`` (it must be posted again before then to
    stay active); resolved: ``endsAt`` = when it resolved (``now`` if unknown)."""
    alert = notification.alert
    labels, annotations = labels_and_annotations(alert)
    posted: dict[str, object] = {"labels": labels, "annotations": annotations}
    if alert.starts_at is not None:
        posted["startsAt"] = iso_utc(alert.starts_at, microseconds=True)
    if notification.resolved:
        posted["endsAt"] = iso_utc(alert.ends_at or now, microseconds=True)
    else:
        posted["endsAt"] = iso_utc(now + dt.timedelta(seconds=valid_seconds), microseconds=True)
    if alert.jaeger_url:
        posted["generatorURL"] = alert.jaeger_url
    return posted


class AlertmanagerChannel(ChannelSettings):
    """Firing alerts are posted again every ``resend_interval_seconds`` while they fire, each valid for
    ENDS_AT_INTERVALS intervals (Alertmanager ends an alert nobody posts again, whatever its resolve_timeout)."""

    type: Literal["alertmanager"]
    url: str = Field(pattern=r"^https?://")
    resend_interval_seconds: float = Field(DEFAULT_RESEND_INTERVAL_SECONDS, ge=1, le=3600)


class AlertmanagerNotifier(HttpReceiver):
    """Posts one alert per notification; :meth:`refresh` posts firing alerts again (the refresher calls it every
    ``resend_interval_seconds``), each valid for ``ENDS_AT_INTERVALS`` intervals, so Alertmanager keeps an alert
    active while it fires and ends it by itself if the monitor stops posting (as it does for Prometheus)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        resend_interval_seconds: float = DEFAULT_RESEND_INTERVAL_SECONDS,
        clock: Callable[[], dt.datetime] = utc_now,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        scrubber: SecretScrubber = default_scrubber,
    ) -> None:
        super().__init__(
            name,
            url.rstrip("/") + "/api/v2/alerts",
            client=client,
            timeout=timeout,
            scrubber=scrubber,
            url_is_secret=False,
        )
        self.resend_interval_seconds = resend_interval_seconds
        self._clock = clock

    @property
    def valid_seconds(self) -> float:
        return ENDS_AT_INTERVALS * self.resend_interval_seconds

    async def notify(self, notification: Notification) -> DeliveryResult:
        return await self._post([alertmanager_alert(notification, self._clock(), valid_seconds=self.valid_seconds)])

    async def refresh(self, alerts: Sequence[Alert]) -> DeliveryResult:
        """Posts ``alerts`` as firing again, in one request (nothing to post is a success)."""
        if not alerts:
            return DeliveryResult(ok=True, detail="nothing firing")
        now = self._clock()
        return await self._post(
            [
                alertmanager_alert(Notification.of(alert, "firing"), now, valid_seconds=self.valid_seconds)
                for alert in alerts
            ]
        )

    async def end(self, alerts: Sequence[Alert]) -> DeliveryResult:
        """Posts ``alerts`` as ended now (a refresh that may have raced their resolution is taken back)."""
        if not alerts:
            return DeliveryResult(ok=True, detail="nothing to end")
        now = self._clock()
        return await self._post([alertmanager_alert(Notification.of(alert, "resolved"), now) for alert in alerts])


def alertmanager_notifier(
    name: str,
    channel: AlertmanagerChannel,
    *,
    client: httpx.AsyncClient | None = None,
    scrubber: SecretScrubber = default_scrubber,
    clock: Callable[[], dt.datetime] | None = None,
) -> AlertmanagerNotifier:
    """The notifier of one ``alertmanager`` channel (the Dispatcher's and the refresher's are built alike);
    ``clock`` stamps ``endsAt`` (default: the wall clock)."""
    return AlertmanagerNotifier(
        name,
        channel.url,
        resend_interval_seconds=channel.resend_interval_seconds,
        client=client,
        timeout=channel.timeout_seconds,
        scrubber=scrubber,
        **({"clock": clock} if clock is not None else {}),
    )

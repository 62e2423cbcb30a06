"""Keeps alerts that still fire active in Alertmanager: posts them again to every ``alertmanager`` channel each
resend interval, as Prometheus does, since Alertmanager ends an alert nobody posts again.

A refresh is not a notification: it bypasses the outbox (a failed one is logged, the next one retries). The first
firing post and the resolved one are notifications and go through the outbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence

import httpx

from otel_monitor._utc_time import utc_now
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.evaluate.inhibition import inhibited_name
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.monitor.alerting.notifiers.alertmanager import (
    AlertmanagerChannel,
    AlertmanagerNotifier,
    alertmanager_notifier,
)
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["AlertmanagerRefresher", "RefreshedChannel", "announced_firing", "REFRESHED_PRIORITIES"]

_log = StructuredLogger("otel_monitor.alerting.alertmanager_refresh")

# Priorities whose transitions reach a channel one alert at a time; P1 ones reach it as digests, so a channel
# never held the P1 alerts themselves and nothing of theirs is posted again.
REFRESHED_PRIORITIES = frozenset({Priority.P0, Priority.P2})

Sleep = Callable[[float, asyncio.Event], Awaitable[None]]


async def _sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def announced_firing(alerts: Iterable[Alert]) -> list[Alert]:
    """The firing alerts of ``alerts`` that no firing alert holds back (an inhibitor names, in its ``inhibited``,
    the alerts it holds back; the evaluator sets it on every pass)."""
    firing = [alert for alert in alerts if alert.state is AlertState.FIRING]
    held = {name for alert in firing for name in alert.inhibited}
    return [alert for alert in firing if inhibited_name(alert) not in held]


class RefreshedChannel:
    """One ``alertmanager`` channel: its notifier and the priorities routed to it that are posted again."""

    def __init__(self, notifier: AlertmanagerNotifier, priorities: Collection[Priority]) -> None:
        self.notifier = notifier
        self.priorities = frozenset(priorities)

    @property
    def name(self) -> str:
        return self.notifier.name


class AlertmanagerRefresher:
    """Every channel's ``resend_interval_seconds``, posts the alerts ``firing()`` returns (those of its priorities)
    as firing again; each channel on its own, so one Alertmanager that hangs never delays another.

    ``firing()`` returns the alerts firing now and not inhibited. An alert that stops firing while its refresh is
    in flight is posted as ended right after, so a refresh landing after its resolved notification cannot bring
    it back to life in Alertmanager.
    """

    def __init__(
        self,
        firing: Callable[[], Iterable[Alert]],
        channels: Sequence[RefreshedChannel],
        *,
        sleep: Sleep = _sleep_unless_stopped,
        scrubber: SecretScrubber = default_scrubber,
    ) -> None:
        self._firing = firing
        self.channels = list(channels)
        self._sleep = sleep
        self._scrubber = scrubber

    @classmethod
    def from_config(
        cls,
        delivery: DeliveryConfig,
        alerts: Callable[[], Iterable[Alert]],
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        client: httpx.AsyncClient | None = None,
        scrubber: SecretScrubber = default_scrubber,
        sleep: Sleep = _sleep_unless_stopped,
    ) -> AlertmanagerRefresher:
        """The refresher of every ``alertmanager`` channel of ``delivery`` routed a priority it posts again;
        ``alerts()`` gives the pending and firing alerts (``AlertingService.alerts``)."""
        channels = []
        for name, channel in delivery.channels.items():
            priorities = {priority for priority in REFRESHED_PRIORITIES if name in delivery.channels_for(priority)}
            if isinstance(channel, AlertmanagerChannel) and priorities:
                notifier = alertmanager_notifier(name, channel, client=client, scrubber=scrubber, clock=clock)
                channels.append(RefreshedChannel(notifier, priorities))
        return cls(lambda: announced_firing(alerts()), channels, sleep=sleep, scrubber=scrubber)

    def _due(self, channel: RefreshedChannel) -> list[Alert]:
        return [alert for alert in self._firing() if alert.priority in channel.priorities]

    async def refresh(self, channel: RefreshedChannel) -> bool:
        """Posts the channel's firing alerts once; False (and a warning logged) when the post failed."""
        try:
            alerts = self._due(channel)
            result = await channel.notifier.refresh(alerts)
            if result.ok:
                still = {alert.fingerprint for alert in self._due(channel)}
                stopped = [alert for alert in alerts if alert.fingerprint not in still]
                if stopped:
                    result = await channel.notifier.end(stopped)
        except Exception as exc:  # never ends the loop: the next refresh retries
            _log.warning(
                "Alertmanager refresh failed; the next one retries",
                channel=channel.name,
                reason=self._scrubber.scrub_text(f"{type(exc).__name__}: {exc}")[:300],
            )
            return False
        if not result.ok:
            _log.warning(
                "Alertmanager refresh failed; the next one retries",
                channel=channel.name,
                alerts=len(alerts),
                reason=result.detail[:300],
            )
        return result.ok

    async def _run_channel(self, channel: RefreshedChannel, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh(channel)
            await self._sleep(channel.notifier.resend_interval_seconds, stop)

    async def run(self, stop: asyncio.Event) -> None:
        """Refreshes every channel at once, then each after its interval, until ``stop`` is set (no channel: returns
        at once)."""
        await asyncio.gather(*(self._run_channel(channel, stop) for channel in self.channels))

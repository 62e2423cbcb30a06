"""The fire drill: a synthetic alert sent through channels via the real outbox and Dispatcher, and per channel what
came of it (delivered, retrying or failed, with the reason)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Delivery, DeliveryStatus, Outbox
from otel_monitor.monitor.alerting.model import FIRING, Alert, AlertState, Priority, fingerprint
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.routing import DeliveryConfig

__all__ = ["DRILL_RULE", "ChannelDrill", "DrillOutcome", "UnknownChannelError", "drill_channels", "run_fire_drill"]

DRILL_RULE = "notify_test"
_POLL_SECONDS = 0.05


class UnknownChannelError(LookupError):
    """The drill was asked for a channel the config does not define."""


class DrillOutcome:
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"


@dataclass(frozen=True)
class ChannelDrill:
    """What the drill's notification came to on one channel; ``reason`` is the ledger's scrubbed text."""

    channel: str
    outcome: str
    reason: str
    notification_id: str
    attempts: int

    def to_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "outcome": self.outcome,
            "reason": self.reason,
            "notification_id": self.notification_id,
            "attempts": self.attempts,
        }


def drill_channels(config: DeliveryConfig, channel: str | None = None) -> tuple[str, ...]:
    """``channel`` alone (any channel of the config), else every channel some priority is routed to."""
    if channel is not None:
        if channel not in config.channels:
            known = ", ".join(sorted(config.channels)) or "none"
            raise UnknownChannelError(f"unknown channel {channel!r} (known: {known})")
        return (channel,)
    return tuple(dict.fromkeys(name for names in config.routing.values() for name in names))


def drill_alert(now: dt.datetime) -> Alert:
    """A firing P0 of its own (a new fingerprint per drill), saying it is a test."""
    labels = {"service": "otel-monitor", "drill_id": uuid.uuid4().hex}
    return Alert(
        fingerprint=fingerprint(DRILL_RULE, labels),
        rule=DRILL_RULE,
        priority=Priority.P0,
        state=AlertState.FIRING,
        error_code="NOTIFY_TEST",
        summary="Fire drill: a test notification from otel-monitor",
        action_required="None: this checks that the channel delivers.",
        runbook="none: a fire drill (otel-monitor notify-test)",
        labels=labels,
        starts_at=now,
    )


def _settled(delivery: Delivery | None, settle_until: dt.datetime) -> bool:
    """Done, or waiting for a retry due after ``settle_until`` (no attempt in flight)."""
    if delivery is None or not delivery.attempts or delivery.entry.attempts > len(delivery.attempts):
        return False
    return delivery.entry.status != DeliveryStatus.PENDING or delivery.entry.next_attempt_at > settle_until


def _outcome(delivery: Delivery | None, channel: str, notification_id: str, waited: float) -> ChannelDrill:
    if delivery is None or not delivery.attempts:
        reason = f"no attempt finished within {waited:.0f}s"
        return ChannelDrill(channel, DrillOutcome.FAILED, reason, notification_id, 0)
    entry, last = delivery.entry, delivery.attempts[-1]
    count = len(delivery.attempts)
    error = last.error or (f"HTTP {last.status_code}" if last.status_code else "")
    if entry.status == DeliveryStatus.DELIVERED:
        outcome, reason = DrillOutcome.DELIVERED, error or "accepted by the channel"
    elif entry.status == DeliveryStatus.PENDING:
        retry_at = iso_utc(entry.next_attempt_at)
        outcome, reason = DrillOutcome.RETRYING, f"{error} (attempt {count}; next at {retry_at})"
    elif entry.status == DeliveryStatus.GIVEN_UP:
        outcome, reason = DrillOutcome.FAILED, f"{error} (given up after {count} attempts)"
    else:
        outcome, reason = DrillOutcome.FAILED, error
    return ChannelDrill(channel, outcome, reason, notification_id, count)


async def run_fire_drill(
    outbox: Outbox,
    dispatcher: Dispatcher,
    channels: Sequence[str],
    *,
    settle_seconds: float = 0.0,
) -> list[ChannelDrill]:
    """Queues a drill alert for ``channels`` and delivers it with ``dispatcher`` (a running one may take rows too).

    Waits for each channel's first outcome, and for its retries due within ``settle_seconds``: a 5xx is
    ``retrying`` unless the retry policy gives it up by then (``failed``). The wait is bounded by that and the
    channels' leases (their timeouts and the lease margin); a channel with no outcome by then is ``failed``. Times
    are the outbox's clock's."""
    clock = outbox.clock
    notification = Notification.of(drill_alert(clock()), FIRING)
    await outbox.executor.run(outbox.enqueue_notification, notification, channels)
    dispatcher.wake()
    settle_until = clock() + dt.timedelta(seconds=settle_seconds)
    waited = settle_seconds + max((dispatcher.lease_seconds(channel) for channel in channels), default=0.0)
    deadline = time.monotonic() + waited
    while True:
        deliveries = {
            delivery.entry.channel: delivery
            for delivery in await outbox.executor.run(outbox.deliveries, notification_ids=[notification.id])
        }
        unsettled = [channel for channel in channels if not _settled(deliveries.get(channel), settle_until)]
        if not unsettled or time.monotonic() >= deadline:
            break
        await asyncio.gather(*(dispatcher.deliver_due(channel) for channel in unsettled))
        await asyncio.sleep(_POLL_SECONDS)
    return [_outcome(deliveries.get(channel), channel, notification.id, waited) for channel in channels]

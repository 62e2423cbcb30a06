"""``GET /api/v1/notifications`` (the delivery ledger: every delivery on every channel with its attempts) and
``POST /api/v1/notifications/test`` (the fire drill), over the app's alerting service."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.api_models import DrillReport, NotificationList
from otel_monitor.monitor.alerting.delivery.drill import (
    DrillOutcome,
    UnknownChannelError,
    drill_channels,
    run_fire_drill,
)
from otel_monitor.monitor.alerting.delivery.outbox import DELIVERY_STATUSES, Delivery, DeliveryStatus
from otel_monitor.monitor.api_errors import error_responses

if TYPE_CHECKING:
    from otel_monitor.monitor.alerting.service import AlertingService

__all__ = ["NOTIFICATIONS_PATH", "NOTIFICATIONS_TEST_PATH", "build_notifications_router", "delivery_json"]

NOTIFICATIONS_PATH = "/api/v1/notifications"
NOTIFICATIONS_TEST_PATH = "/api/v1/notifications/test"
_DEFAULT_LIMIT = 100
_MAX_LIMIT = 1000
_MAX_SETTLE_SECONDS = 300

# The statuses as a Literal, so an unknown one is FastAPI's documented 422; built at run time from the outbox's
# statuses, which a type checker cannot follow: it sees the plain string they are.
if TYPE_CHECKING:
    DeliveryStatusParam = str
else:
    DeliveryStatusParam = Literal[DELIVERY_STATUSES]


def delivery_json(delivery: Delivery) -> dict[str, object]:
    """One delivery of the ledger as the API shows it."""
    entry = delivery.entry
    alert = entry.notification.alert
    return {
        "id": entry.id,
        "channel": entry.channel,
        "notification_id": entry.notification.id,
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "priority": alert.priority.value,
        "transition": entry.notification.transition,
        "status": entry.status,
        "created_at": iso_utc(entry.created_at, microseconds=True),
        "done_at": iso_utc(entry.done_at, microseconds=True),
        "next_attempt_at": (
            iso_utc(entry.next_attempt_at, microseconds=True) if entry.status == DeliveryStatus.PENDING else None
        ),
        "last_error": entry.last_error,
        "attempts": [attempt.to_json() for attempt in delivery.attempts],
    }


def _alerting(request: Request) -> AlertingService | None:
    return getattr(request.app.state, "alerting", None)


def build_notifications_router() -> APIRouter:
    """The ledger and the drill over ``app.state.alerting``: while alerting is off the ledger is empty and a drill
    answers 409. Bad parameters answer 422 JSON; a drill of an unknown channel 404 JSON."""
    router = APIRouter(tags=["notifications"])

    @router.get(NOTIFICATIONS_PATH, response_model=NotificationList)
    async def get_notifications(
        request: Request,
        channel: Annotated[str | None, Query(description="only deliveries on this channel")] = None,
        status: Annotated[DeliveryStatusParam | None, Query(description="only deliveries in this state")] = None,
        since: Annotated[
            dt.datetime | None,
            Query(description="only deliveries queued at or after this ISO 8601 time (UTC if no offset)"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=_MAX_LIMIT, description="at most this many, newest first")] = (
            _DEFAULT_LIMIT
        ),
    ) -> dict[str, object]:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        alerting = _alerting(request)
        if alerting is None:
            return {"notifications": []}
        outbox = alerting.outbox
        deliveries = await outbox.executor.run(
            outbox.deliveries, channel=channel, status=status, since=since, limit=limit
        )
        return {"notifications": [delivery_json(delivery) for delivery in deliveries]}

    @router.post(NOTIFICATIONS_TEST_PATH, response_model=DrillReport, responses=error_responses(404, 409))
    async def post_notification_test(
        request: Request,
        channel: Annotated[str | None, Query(description="only this channel (default: every routed channel)")] = None,
        settle_seconds: Annotated[
            float, Query(ge=0, le=_MAX_SETTLE_SECONDS, description="also wait for retries due within this long")
        ] = 0.0,
    ) -> dict[str, object]:
        alerting = _alerting(request)
        if alerting is None:
            raise HTTPException(409, "alerting is not enabled: no channel to drill")
        try:
            channels = drill_channels(alerting.delivery, channel)
        except UnknownChannelError as error:
            raise HTTPException(404, str(error)) from None
        if not channels:
            raise HTTPException(409, "no channel is routed")
        results = await run_fire_drill(alerting.outbox, alerting.dispatcher, channels, settle_seconds=settle_seconds)
        return {
            "ok": all(result.outcome == DrillOutcome.DELIVERED for result in results),
            "channels": [result.to_json() for result in results],
        }

    return router

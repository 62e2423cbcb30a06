"""The P1 hourly digest: one notification per closed hour with P1 transitions, on an injected clock."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from otel_monitor.alerting.digest import DIGEST_ERROR_CODE, DIGEST_MESSAGE, HourlyDigest
from otel_monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.alerting.notifiers.notification import Notification

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def alert(code: str, *, priority: Priority = Priority.P1, service: str = "gemini",
          state: AlertState = AlertState.FIRING) -> Alert:
    return Alert(fingerprint=f"fp-{code}-{service}", rule=code.lower(), priority=priority, state=state,
                 error_code=code, summary=f"{code} summary", action_required=f"Fix {code}", runbook="rb",
                 labels={"service": service}, starts_at=T0, trace_id="ab" * 16,
                 jaeger_url="http://jaeger/trace/" + "ab" * 16,
                 ends_at=T0 + dt.timedelta(minutes=30) if state is AlertState.RESOLVED else None)


# (events as (minutes after T0, alert), flush at minutes, expected error codes per digest sent)
CASES = [
    pytest.param([(1, alert("GEMINI_ERROR_RATE_HIGH")), (20, alert("D_ID_QUOTA_LOW", service="d-id")),
                  (59, alert("CELERY_QUEUE_LONG", service="celery"))], 61,
                 [["GEMINI_ERROR_RATE_HIGH", "D_ID_QUOTA_LOW", "CELERY_QUEUE_LONG"]], id="three-p1-one-digest"),
    pytest.param([(5, alert("GEMINI_ERROR_RATE_HIGH")),
                  (40, alert("GEMINI_ERROR_RATE_HIGH", state=AlertState.RESOLVED))], 60,
                 [["GEMINI_ERROR_RATE_HIGH", "GEMINI_ERROR_RATE_HIGH"]], id="firing-and-resolved"),
    pytest.param([(5, alert("GEMINI_ERROR_RATE_HIGH")), (6, alert("GEMINI_ERROR_RATE_HIGH"))], 60,
                 [["GEMINI_ERROR_RATE_HIGH"]], id="same-transition-once"),
    pytest.param([(5, alert("GEMINI_ERROR_RATE_HIGH")), (70, alert("D_ID_QUOTA_LOW", service="d-id"))], 130,
                 [["GEMINI_ERROR_RATE_HIGH"], ["D_ID_QUOTA_LOW"]], id="two-hours-two-digests"),
    pytest.param([(5, alert("GEMINI_ERROR_RATE_HIGH"))], 59, [], id="hour-still-open"),
    pytest.param([(5, alert("GEMINI_INVALID_API_KEY", priority=Priority.P0)),
                  (6, alert("DAILY", priority=Priority.P2))], 61, [], id="non-p1-ignored"),
    pytest.param([], 61, [], id="empty-hour-nothing"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("events", "flush_at", "expected"), CASES)
async def test_digest_groups_the_hour(events, flush_at, expected):
    """Each closed hour with P1 transitions gives one digest listing them all; nothing else is sent."""
    clock = Clock(T0)
    sent: list[Notification] = []
    digest = HourlyDigest(sent.append, clock=clock)
    for minutes, item in events:
        clock.now = T0 + dt.timedelta(minutes=minutes)
        digest.add(item)
    clock.now = T0 + dt.timedelta(minutes=flush_at)
    assert await digest.flush() == sent
    assert [[entry.alert.error_code for entry in n.digest] for n in sent] == expected
    assert all(n.alert.priority is Priority.P1 and n.alert.error_code == DIGEST_ERROR_CODE for n in sent)
    assert await digest.flush() == []  # each hour is sent once


@pytest.mark.asyncio
async def test_digest_log_line_and_round_trip(caplog):
    """The digest is logged at WARNING in the P1 shape with every alert's fields, and survives the outbox's JSON."""
    clock = Clock(T0)
    sent: list[Notification] = []

    async def send(notification: Notification) -> None:
        sent.append(notification)

    digest = HourlyDigest(send, clock=clock)
    digest.add(alert("GEMINI_ERROR_RATE_HIGH"))
    digest.add(alert("D_ID_QUOTA_LOW", service="d-id", state=AlertState.RESOLVED))
    clock.now = T0 + dt.timedelta(hours=1, seconds=1)
    with caplog.at_level(logging.WARNING, logger="otel_monitor.alerts"):
        await digest.flush()
    (record,) = [r for r in caplog.records if r.getMessage() == DIGEST_MESSAGE]
    assert record.levelno == logging.WARNING and record.alert_priority == "P1"
    alerts = record.details["alerts"]
    assert [(a["status"], a["error_code"], a["service"]) for a in alerts] == [
        ("firing", "GEMINI_ERROR_RATE_HIGH", "gemini"), ("resolved", "D_ID_QUOTA_LOW", "d-id")]
    assert alerts[0]["action_required"] == "Fix GEMINI_ERROR_RATE_HIGH"
    assert alerts[0]["trace_id"] == "ab" * 16 and alerts[0]["jaeger_url"].endswith("ab" * 16)
    (notification,) = sent
    assert Notification.from_json(notification.to_json()) == notification


@pytest.mark.asyncio
async def test_failed_hand_over_keeps_the_hour():
    """A send that raises leaves the hour's transitions for the next flush: nothing is dropped."""
    clock = Clock(T0)
    calls: list[Notification] = []

    def send(notification: Notification) -> None:
        calls.append(notification)
        if len(calls) == 1:
            raise RuntimeError("outbox down")

    digest = HourlyDigest(send, clock=clock)
    digest.add(alert("GEMINI_ERROR_RATE_HIGH"))
    clock.now = T0 + dt.timedelta(hours=1)
    with pytest.raises(RuntimeError):
        await digest.flush()
    assert digest.pending() == 1
    (again,) = await digest.flush()
    assert again.id == calls[0].id and digest.pending() == 0

"""Reset dates of the provider quotas: daily UTC, monthly, daily Pacific across both 2026 DST changes, none."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from otel_monitor.monitor.quota.config import QuotaConfig, ResetSchedule
from otel_monitor.monitor.quota.reset_schedule import ResetRule, next_reset, window_start

RULES = QuotaConfig().reset_rules()
LA = ZoneInfo("America/Los_Angeles")


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    "service, now, expected_start, expected_next",
    [
        # Gemini: every day at 00:00 UTC (the required schedule)
        ("gemini", "2026-01-31T23:59:59Z", "2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z"),
        ("gemini", "2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"),
        ("gemini", "2026-02-01T00:00:01Z", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"),
        ("gemini", "2026-02-28T12:00:00Z", "2026-02-28T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("gemini", "2026-03-08T09:00:00Z", "2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z"),
        ("gemini", "2026-11-01T09:00:00Z", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
        ("gemini", "2026-12-31T23:59:59.999999Z", "2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("gemini", "2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z"),
        # D-ID: the 1st of every month at 00:00 UTC
        ("d-id", "2026-01-31T23:59:59Z", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        ("d-id", "2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("d-id", "2026-02-01T00:00:01Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("d-id", "2026-02-28T23:59:59Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("d-id", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
        ("d-id", "2026-03-08T09:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
        ("d-id", "2026-11-01T07:00:00Z", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ("d-id", "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("d-id", "2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"),
        # YouTube: midnight America/Los_Angeles: 08:00Z in winter (PST), 07:00Z in summer (PDT)
        ("youtube", "2026-01-15T07:59:59Z", "2026-01-14T08:00:00Z", "2026-01-15T08:00:00Z"),
        ("youtube", "2026-01-15T08:00:00Z", "2026-01-15T08:00:00Z", "2026-01-16T08:00:00Z"),
        ("youtube", "2026-01-15T08:00:01Z", "2026-01-15T08:00:00Z", "2026-01-16T08:00:00Z"),
        ("youtube", "2026-01-01T07:59:59Z", "2025-12-31T08:00:00Z", "2026-01-01T08:00:00Z"),
        ("youtube", "2026-02-01T07:59:59Z", "2026-01-31T08:00:00Z", "2026-02-01T08:00:00Z"),
        ("youtube", "2026-03-01T07:59:59Z", "2026-02-28T08:00:00Z", "2026-03-01T08:00:00Z"),
        ("youtube", "2026-03-01T08:00:00Z", "2026-03-01T08:00:00Z", "2026-03-02T08:00:00Z"),
        # spring forward, Sunday 2026-03-08 02:00 PST -> 03:00 PDT: a 23-hour quota day
        ("youtube", "2026-03-08T07:59:59Z", "2026-03-07T08:00:00Z", "2026-03-08T08:00:00Z"),
        ("youtube", "2026-03-08T08:00:00Z", "2026-03-08T08:00:00Z", "2026-03-09T07:00:00Z"),
        ("youtube", "2026-03-08T10:30:00Z", "2026-03-08T08:00:00Z", "2026-03-09T07:00:00Z"),
        ("youtube", "2026-03-09T06:59:59Z", "2026-03-08T08:00:00Z", "2026-03-09T07:00:00Z"),
        ("youtube", "2026-03-09T07:00:00Z", "2026-03-09T07:00:00Z", "2026-03-10T07:00:00Z"),
        ("youtube", "2026-07-01T06:59:59Z", "2026-06-30T07:00:00Z", "2026-07-01T07:00:00Z"),
        # fall back, Sunday 2026-11-01 02:00 PDT -> 01:00 PST: a 25-hour quota day, 01:30 happens twice
        ("youtube", "2026-11-01T06:59:59Z", "2026-10-31T07:00:00Z", "2026-11-01T07:00:00Z"),
        ("youtube", "2026-11-01T07:00:00Z", "2026-11-01T07:00:00Z", "2026-11-02T08:00:00Z"),
        ("youtube", "2026-11-01T08:30:00Z", "2026-11-01T07:00:00Z", "2026-11-02T08:00:00Z"),
        ("youtube", "2026-11-01T09:30:00Z", "2026-11-01T07:00:00Z", "2026-11-02T08:00:00Z"),
        ("youtube", "2026-11-02T07:59:59Z", "2026-11-01T07:00:00Z", "2026-11-02T08:00:00Z"),
        ("youtube", "2026-11-02T08:00:00Z", "2026-11-02T08:00:00Z", "2026-11-03T08:00:00Z"),
        ("youtube", "2027-01-01T07:59:59Z", "2026-12-31T08:00:00Z", "2027-01-01T08:00:00Z"),
        ("youtube", "2027-01-01T08:00:00Z", "2027-01-01T08:00:00Z", "2027-01-02T08:00:00Z"),
        # Stability: pay-as-you-go, never resets
        ("stability", "2026-01-31T23:59:59Z", None, None),
        ("stability", "2026-03-08T08:00:00Z", None, None),
        ("stability", "2026-12-31T23:59:59Z", None, None),
    ],
)
def test_reset_dates(service, now, expected_start, expected_next):
    """Each provider's current window starts at its last reset (the reset instant included) and ends at the next."""
    rule = RULES[service]
    assert window_start(rule, utc(now)) == (utc(expected_start) if expected_start else None)
    assert next_reset(rule, utc(now)) == (utc(expected_next) if expected_next else None)


@pytest.mark.parametrize(
    "schedule, now, expected_start, expected_next",
    [
        # Gemini as Google documents it: midnight Pacific
        (
            ResetSchedule(cycle="daily", timezone="America/Los_Angeles"),
            "2026-03-08T12:00:00Z",
            "2026-03-08T08:00:00Z",
            "2026-03-09T07:00:00Z",
        ),
        (
            ResetSchedule(cycle="daily", time=dt.time(6, 30)),
            "2026-02-28T06:29:59Z",
            "2026-02-27T06:30:00Z",
            "2026-02-28T06:30:00Z",
        ),
        (
            ResetSchedule(cycle="monthly", day_of_month=15),
            "2026-01-31T00:00:00Z",
            "2026-01-15T00:00:00Z",
            "2026-02-15T00:00:00Z",
        ),
        (
            ResetSchedule(cycle="monthly", timezone="Asia/Taipei"),
            "2026-12-31T16:00:00Z",
            "2026-12-31T16:00:00Z",
            "2027-01-31T16:00:00Z",
        ),
    ],
)
def test_configured_schedules(schedule, now, expected_start, expected_next):
    """A configured time, zone or day of month moves the reset accordingly."""
    assert window_start(schedule.rule(), utc(now)) == utc(expected_start)
    assert next_reset(schedule.rule(), utc(now)) == utc(expected_next)


@pytest.mark.parametrize("service", ["gemini", "d-id", "youtube"])
def test_every_hour_of_2026_lies_in_its_window(service):
    """For every hour of 2026 the window holds the clock and both ends are the rule's local reset time."""
    rule = RULES[service]
    moment = utc("2026-01-01T00:00:00Z")
    while moment.year == 2026:
        start, end = window_start(rule, moment), next_reset(rule, moment)
        assert start <= moment < end
        for edge in (start, end):
            local = edge.astimezone(rule.zone)
            assert (local.hour, local.minute) == (0, 0)
            assert rule.cycle == "daily" or local.day == 1
        moment += dt.timedelta(minutes=61)


@pytest.mark.parametrize(
    "now",
    [
        dt.datetime(2026, 3, 8, 0, 30, tzinfo=LA),
        dt.datetime(2026, 3, 8, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=9))),
    ],
)
def test_clock_in_any_zone(now):
    """An aware clock reading in any zone gives the same answer as in UTC."""
    rule = RULES["youtube"]
    assert next_reset(rule, now) == next_reset(rule, now.astimezone(dt.UTC))
    assert next_reset(rule, now).tzinfo == dt.UTC


@pytest.mark.parametrize("function", [window_start, next_reset])
def test_naive_clock_refused(function):
    """A naive datetime is refused rather than guessed."""
    with pytest.raises(ValueError, match="timezone-aware"):
        function(ResetRule.daily(), dt.datetime(2026, 1, 1))

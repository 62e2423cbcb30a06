"""Reset-date maths of the provider quotas: pure functions of a reset rule and a clock reading, answers in UTC."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["Cycle", "ResetRule", "window_start", "next_reset"]

Cycle = Literal["daily", "monthly", "none"]
_UTC = dt.UTC


@dataclass(frozen=True)
class ResetRule:
    """When a quota starts over: every day or every month (on ``day``) at ``at`` local time in ``zone``; or never."""

    cycle: Cycle
    at: dt.time = dt.time(0, 0)
    zone: dt.tzinfo = _UTC
    day: int = 1

    @classmethod
    def daily(cls, at: dt.time = dt.time(0, 0), zone: str = "UTC") -> ResetRule:
        return cls("daily", at, ZoneInfo(zone))

    @classmethod
    def monthly(cls, day: int = 1, at: dt.time = dt.time(0, 0), zone: str = "UTC") -> ResetRule:
        return cls("monthly", at, ZoneInfo(zone), day)

    @classmethod
    def never(cls) -> ResetRule:
        return cls("none")


def _require_aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the clock must give timezone-aware datetimes")
    return now.astimezone(_UTC)


def _local_instant(rule: ResetRule, day: dt.date) -> dt.datetime:
    # Built in the rule's zone, then compared in UTC: aware datetimes sharing a tzinfo compare by wall time.
    return dt.datetime.combine(day, rule.at, tzinfo=rule.zone).astimezone(_UTC)


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


# Cycles before and after the one of ``now``'s local date: two each way cover zones whose offset jumps a day.
_NEARBY_CYCLES = range(-2, 3)


def _nearby_resets(rule: ResetRule, now: dt.datetime) -> list[dt.datetime]:
    """The resets of the cycles around ``now`` (UTC), in time order; window_start and next_reset pick from them."""
    local = now.astimezone(rule.zone)
    if rule.cycle == "daily":
        return [_local_instant(rule, local.date() + dt.timedelta(days=step)) for step in _NEARBY_CYCLES]
    return [
        _local_instant(rule, dt.date(*_add_months(local.year, local.month, step), rule.day)) for step in _NEARBY_CYCLES
    ]


def window_start(rule: ResetRule, now: dt.datetime) -> dt.datetime | None:
    """The last reset at or before ``now`` (UTC): the start of the current quota window; None if it never resets."""
    now = _require_aware(now)
    if rule.cycle == "none":
        return None
    return max(reset for reset in _nearby_resets(rule, now) if reset <= now)


def next_reset(rule: ResetRule, now: dt.datetime) -> dt.datetime | None:
    """The first reset strictly after ``now`` (UTC); at the reset instant itself, the one after. None if never."""
    now = _require_aware(now)
    if rule.cycle == "none":
        return None
    return min(reset for reset in _nearby_resets(rule, now) if reset > now)

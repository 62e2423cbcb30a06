"""Recurring maintenance windows of the config: on some weekdays (every day when none are named), from ``start`` to
``end`` in a time zone (an ``end`` before ``start`` crosses midnight), holding the alerts their matchers match."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from otel_monitor._utc_time import known_time_zone
from otel_monitor.monitor.alerting.model import Alert
from otel_monitor.monitor.alerting.silences.matchers import Matcher, matches_all, parse_matcher

__all__ = ["MaintenanceWindow", "Weekday", "WEEKDAYS", "WINDOW_ID_PREFIX"]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How a window is named where silences are listed and in an alert's ``silenced_by``.
WINDOW_ID_PREFIX = "maintenance-window:"
_CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class MaintenanceWindow(BaseModel):
    """``alerting.maintenance_windows[]``: ``matchers`` as the CLI writes them (``service=gemini``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    matchers: tuple[str, ...] = Field(min_length=1)
    time_zone: str = "UTC"
    days: tuple[Weekday, ...] = WEEKDAYS
    start: str = Field(pattern=_CLOCK_TIME, description="HH:MM, local time")
    end: str = Field(pattern=_CLOCK_TIME, description="HH:MM, local time; before start: the next day")

    _known_zone = field_validator("time_zone")(known_time_zone)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            parse_matcher(text)  # a ValueError names the bad one
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> MaintenanceWindow:
        if self.start == self.end:
            raise ValueError("end: must differ from start (a window of no time, or of the whole day?)")
        return self

    @property
    def id(self) -> str:
        return f"{WINDOW_ID_PREFIX}{self.name}"

    @property
    def parsed_matchers(self) -> tuple[Matcher, ...]:
        return tuple(parse_matcher(text) for text in self.matchers)

    def is_open(self, now: dt.datetime) -> bool:
        """Whether the window is open at ``now`` (aware), read on the wall clock of its time zone."""
        local = now.astimezone(ZoneInfo(self.time_zone))
        start, end = dt.time.fromisoformat(self.start), dt.time.fromisoformat(self.end)
        today = WEEKDAYS[local.weekday()]
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        clock = local.time().replace(tzinfo=None)
        if start < end:
            return today in self.days and start <= clock < end
        # Across midnight: the evening part belongs to today's window, the morning part to yesterday's.
        return (today in self.days and clock >= start) or (yesterday in self.days and clock < end)

    def holds(self, alert: Alert, now: dt.datetime) -> bool:
        return self.is_open(now) and matches_all(self.parsed_matchers, alert)

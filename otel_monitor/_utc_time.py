"""The clock, UTC timestamps as alerts and logs write them (``2025-10-20T10:30:15.123Z``), time zones checked once."""

from __future__ import annotations

import datetime as dt
from typing import overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["utc_now", "iso_utc", "epoch_iso_utc", "known_time_zone"]

_UTC = dt.UTC


def utc_now() -> dt.datetime:
    """The current time, time-zone aware in UTC: the default clock every component takes as an argument."""
    return dt.datetime.now(_UTC)


@overload
def iso_utc(
    moment: dt.datetime, *, milliseconds: bool = False, microseconds: bool = False, utc_suffix: str = "Z"
) -> str: ...


@overload
def iso_utc(
    moment: dt.datetime | None, *, milliseconds: bool = False, microseconds: bool = False, utc_suffix: str = "Z"
) -> str | None: ...


def iso_utc(
    moment: dt.datetime | None, *, milliseconds: bool = False, microseconds: bool = False, utc_suffix: str = "Z"
) -> str | None:
    """``2025-11-01T00:00:00Z``: with ``.123`` when asked for milliseconds; with the microseconds as
    ``datetime.isoformat`` writes them (``.123456``, none when zero) when asked for those; ``utc_suffix="+00:00"``
    ends it as ``isoformat`` does. None stays None."""
    if moment is None:
        return None
    moment = moment.astimezone(_UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if milliseconds:
        text += f".{moment.microsecond // 1000:03d}"
    elif microseconds and moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + utc_suffix


def epoch_iso_utc(epoch_seconds: float) -> str:
    """Epoch seconds as UTC ISO-8601 with milliseconds and ``Z``."""
    return iso_utc(dt.datetime.fromtimestamp(epoch_seconds, _UTC), milliseconds=True)


def known_time_zone(value: str) -> str:
    """``value`` if it names an IANA time zone; a ValueError naming it otherwise (a pydantic validator body)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'UTC', 'America/Los_Angeles')") from None
    return value

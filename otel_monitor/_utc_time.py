"""UTC timestamps as the spec writes them (``2025-10-20T10:30:15.123Z``) and time zone names checked once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["iso_utc", "epoch_iso_utc", "known_time_zone"]

_UTC = dt.timezone.utc


def iso_utc(moment: dt.datetime | None, *, milliseconds: bool = False) -> str | None:
    """``2025-11-01T00:00:00Z`` (with ``.123`` when asked); None stays None."""
    if moment is None:
        return None
    moment = moment.astimezone(_UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if milliseconds:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


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

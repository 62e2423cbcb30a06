"""When a quota runs out at the current burn rate: a pure function of the usage history and the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

__all__ = ["burn_rate", "forecast_exhaustion", "MIN_SPAN"]

# Two points closer than this say nothing reliable about a rate.
MIN_SPAN = dt.timedelta(minutes=1)


def burn_rate(
    history: Iterable[tuple[dt.datetime, float]],
    now: dt.datetime,
    used: float,
    *,
    window_start: dt.datetime | None = None,
    lookback: dt.timedelta = dt.timedelta(hours=3),
) -> float | None:
    """Units used per second: from the oldest recorded use within ``lookback`` (and the current window) to now;
    without such history, the window so far. Points before a drop (a reset, a top-up) are ignored. None: unknown."""
    earliest = now - lookback
    if window_start is not None:
        earliest = max(earliest, window_start)
    points = sorted((t, u) for t, u in history if earliest <= t <= now)
    points.append((now, used))
    start = 0
    for index in range(1, len(points)):
        if points[index][1] < points[index - 1][1]:
            start = index
    first_at, first_used = points[start]
    if now - first_at >= MIN_SPAN:
        return (used - first_used) / (now - first_at).total_seconds()
    if start == 0 and window_start is not None and now - window_start >= MIN_SPAN:
        return used / (now - window_start).total_seconds()
    return None


def forecast_exhaustion(
    used: float,
    total: float,
    now: dt.datetime,
    history: Iterable[tuple[dt.datetime, float]] = (),
    *,
    window_start: dt.datetime | None = None,
    next_reset: dt.datetime | None = None,
    lookback: dt.timedelta = dt.timedelta(hours=3),
) -> dt.datetime | None:
    """The moment ``used`` reaches ``total`` at the current burn rate; ``now`` if it already has; None when nothing
    is being used or the quota resets first."""
    if used >= total:
        return now
    rate = burn_rate(history, now, used, window_start=window_start, lookback=lookback)
    if rate is None or rate <= 0:
        return None
    exhausted_at = now + dt.timedelta(seconds=(total - used) / rate)
    if next_reset is not None and exhausted_at >= next_reset:
        return None
    return exhausted_at

"""A clock a test sets by hand, injected wherever the code under test takes one."""

from __future__ import annotations

import datetime as dt
import time

__all__ = ["Clock", "RunningClock"]


class Clock:
    """Answers ``now`` until the test moves it (``clock.now = ...`` or ``advance``)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class RunningClock:
    """A clock that runs with real time from ``start``, moved ahead by hand too (``advance``): for a served monitor
    whose loops wait real time between their passes, and a test that skips hours."""

    def __init__(self, start: dt.datetime) -> None:
        self._start = start
        self._began = time.monotonic()
        self._skipped = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return self._start + self._skipped + dt.timedelta(seconds=time.monotonic() - self._began)

    def advance(self, seconds: float) -> None:
        self._skipped += dt.timedelta(seconds=seconds)

"""A clock a test sets by hand, injected wherever the code under test takes one."""

from __future__ import annotations

import datetime as dt

__all__ = ["Clock"]


class Clock:
    """Answers ``now`` until the test moves it (``clock.now = ...`` or ``advance``)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

"""A silence as kept and shown: its matchers, when it holds alerts, who made it and why; its state at a moment."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

from otel_monitor.monitor.alerting.model import Alert
from otel_monitor.monitor.alerting.silences.matchers import Matcher, matches_all

__all__ = ["Silence", "SilenceState"]


class SilenceState(str, Enum):
    PENDING = "pending"  # not started yet
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Silence:
    """Holds the notifications of every alert its matchers all match, from ``starts_at`` until ``ends_at``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: dt.datetime
    ends_at: dt.datetime
    comment: str
    author: str
    created_at: dt.datetime

    def state_at(self, now: dt.datetime) -> SilenceState:
        if now < self.starts_at:
            return SilenceState.PENDING
        if now < self.ends_at:
            return SilenceState.ACTIVE
        return SilenceState.EXPIRED

    def holds(self, alert: Alert, now: dt.datetime) -> bool:
        return self.state_at(now) is SilenceState.ACTIVE and matches_all(self.matchers, alert)

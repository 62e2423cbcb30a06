"""What one evaluation pass reports: each alert that changed, and how, for the pipeline to announce and keep."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from otel_monitor.monitor.alerting.model import FIRING, RESOLVED, Alert, Transition

__all__ = ["Change", "ChangeKind"]


class ChangeKind(str, Enum):
    """How an alert changed in a pass. FIRED and RESOLVED are announced; the others are only kept."""

    FIRED = "fired"  # a firing alert no other holds back, not announced before
    RESOLVED = "resolved"  # an announced alert whose condition stayed clear long enough
    UPDATED = "updated"  # new or changed without an announcement: pending, firing while held back, a new worst value
    DROPPED = "dropped"  # a pending alert whose condition cleared before it fired: it never was an alert
    ENDED = "ended"  # an alert that resolved without ever being announced (held back until it cleared)


_TRANSITIONS: dict[ChangeKind, Transition] = {ChangeKind.FIRED: FIRING, ChangeKind.RESOLVED: RESOLVED}


@dataclass(frozen=True)
class Change:
    """One alert's change in a pass: the alert as it is now (as it was last reported, for DROPPED and ENDED)."""

    alert: Alert
    kind: ChangeKind

    @property
    def transition(self) -> Transition | None:
        """The transition announced, "firing" or "resolved"; None for a change that is only kept."""
        return _TRANSITIONS.get(self.kind)

    @property
    def announced(self) -> bool:
        return self.kind in _TRANSITIONS

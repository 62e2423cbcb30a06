"""A process-wide count of telemetry dropped to protect the host: raised from any thread, zeroed in a forked child."""

from __future__ import annotations

import threading

__all__ = ["LossCounter"]


class LossCounter:
    """Monotonic while the process lives (it backs an OTel counter: a lost increment would read as a reset)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, amount: int = 1) -> None:
        with self._lock:
            self._value += amount

    @property
    def value(self) -> int:
        return self._value

    def reset_after_fork(self) -> None:
        """The parent's losses are the parent's to report; its lock may have been held by a thread that is gone."""
        self._lock = threading.Lock()
        self._value = 0

"""Uptime history of the status page: per component and UTC day, checks up of checks run, counted in memory as
the checks run and written to the ``status_uptime_days`` table in batches."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from otel_monitor.monitor.alerting.delivery.outbox import SqlStore
from otel_monitor.monitor.status.model import UptimeDay
from otel_monitor.monitor.store.schema import UptimeDayRow

__all__ = ["UPTIME_DAYS", "UptimeStore", "UptimeCounts", "uptime_days"]

UPTIME_DAYS = 90
# (component, UTC day) -> [checks up, checks total]
Counts = dict[tuple[str, dt.date], list[int]]


class UptimeCounts:
    """Checks counted since the last flush; ``add`` is cheap and thread-safe (called where the checks finish)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counts = {}

    def add(self, day: dt.date, results: Mapping[str, bool]) -> None:
        """One check run: each component up (True) or not."""
        with self._lock:
            for component, up in results.items():
                counts = self._counts.setdefault((component, day), [0, 0])
                counts[0] += int(up)
                counts[1] += 1

    def peek(self) -> Counts:
        with self._lock:
            return {key: list(value) for key, value in self._counts.items()}

    def take(self) -> Counts:
        """The counts so far, which start again from zero (put them back with ``restore`` if writing fails)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            return counts

    def restore(self, counts: Counts) -> None:
        with self._lock:
            for key, (up, total) in counts.items():
                current = self._counts.setdefault(key, [0, 0])
                current[0] += up
                current[1] += total


class UptimeStore(SqlStore):
    """The ``status_uptime_days`` table, in the alerting store's database."""

    def add(self, counts: Counts) -> None:
        """Adds the counts to their days' rows (created on a component's first check of the day)."""
        if not counts:
            return
        with self._lock, Session(self._ready()) as session, session.begin():
            for (component, day), (up, total) in counts.items():
                row = session.get(UptimeDayRow, (component, day))
                if row is None:
                    session.add(UptimeDayRow(component=component, day=day, checks_up=up, checks_total=total))
                else:
                    row.checks_up += up
                    row.checks_total += total

    def since(self, first_day: dt.date) -> Counts:
        """Every component's stored days from ``first_day`` on."""
        query = select(UptimeDayRow).where(UptimeDayRow.day >= first_day)
        with self._lock, Session(self._ready()) as session:
            return {(row.component, row.day): [row.checks_up, row.checks_total] for row in session.scalars(query)}


def uptime_days(counts: Counts, component: str, today: dt.date, days: int = UPTIME_DAYS) -> list[UptimeDay]:
    """The component's last ``days`` days, oldest first, today included; a day without checks has total 0."""
    bars = []
    for offset in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=offset)
        up, total = counts.get((component, day), (0, 0))
        bars.append(UptimeDay(day=day, checks_up=up, checks_total=total))
    return bars

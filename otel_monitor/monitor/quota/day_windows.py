"""A provider's quota use during one day, from the stored checks: the peak of each quota window overlapping it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from otel_monitor.monitor.quota.reset_schedule import ResetRule, next_reset, window_start
from otel_monitor.monitor.quota.store import UsageSample

if TYPE_CHECKING:
    from otel_monitor.monitor.quota.service import QuotaService

__all__ = ["WindowPeak", "window_peaks", "quota_windows_between"]


@dataclass(frozen=True)
class WindowPeak:
    """The highest use stored for one quota window within a day: the window's start and reset (None when the quota
    never resets), and the check that saw it."""

    window_start: dt.datetime | None
    reset_at: dt.datetime | None
    used: float
    total: float
    percentage: float
    checked_at: dt.datetime


def window_peaks(
    samples: Iterable[UsageSample], rule: ResetRule, start: dt.datetime, end: dt.datetime
) -> list[WindowPeak]:
    """The peak of each quota window among the checks made in ``[start, end)``, oldest window first.

    A UTC day holds two windows of a quota reset at midnight Pacific, one of a quota reset at midnight UTC or never;
    each window's figure is its highest share used in the day, so a reset inside the day does not hide the use
    before it, and a reading taken after the day (the summary is sent the next morning) counts nothing.
    """
    peaks: dict[dt.datetime | None, WindowPeak] = {}
    for sample in samples:
        if not start <= sample.timestamp < end:
            continue
        opened = window_start(rule, sample.timestamp)
        best = peaks.get(opened)
        if best is None or sample.percentage > best.percentage:
            peaks[opened] = WindowPeak(
                opened,
                next_reset(rule, sample.timestamp),
                sample.used,
                sample.total,
                sample.percentage,
                sample.timestamp,
            )
    return sorted(peaks.values(), key=lambda peak: peak.checked_at if peak.window_start is None else peak.window_start)


async def quota_windows_between(
    quota_service: QuotaService, start: dt.datetime, end: dt.datetime
) -> dict[str, list[WindowPeak]]:
    """The window peaks of every provider of ``quota_service`` in ``[start, end)``, from its store."""
    store = quota_service.store
    peaks: dict[str, list[WindowPeak]] = {}
    for service, source in quota_service.sources.items():
        samples = await store.executor.run(store.history, service, start, end)
        peaks[service] = window_peaks(samples, source.rule, start, end)
    return peaks

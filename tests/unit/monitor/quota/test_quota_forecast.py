"""Forecast of quota exhaustion at the current burn rate, from a synthetic history."""

from __future__ import annotations

import datetime as dt

import pytest

from otel_monitor.monitor.quota.forecast import burn_rate, forecast_exhaustion

DAY = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return DAY + dt.timedelta(hours=hours)


@pytest.mark.parametrize(
    "case, used, total, now_h, history, window_h, reset_h, expected_h",
    [
        ("window so far, no history", 600, 1000, 12, [], 0, 24, 20),
        ("window so far reaches the reset: none", 500, 1000, 12, [], 0, 24, None),
        ("steady history, last 3 h", 600, 1000, 12, [(9, 300), (10, 400), (11, 500)], 0, 24, 16),
        ("history older than 3 h ignored", 600, 1000, 12, [(2, 0), (9, 300), (11, 500)], 0, 24, 16),
        ("flat history: not burning", 500, 1000, 12, [(9, 500), (10, 500), (11, 500)], 0, 24, None),
        ("already exhausted: now", 1000, 1000, 12, [(11, 900)], 0, 24, 12),
        ("over the quota: now", 1200, 1000, 12, [], 0, 24, 12),
        ("samples of the previous window ignored", 100, 1000, 2, [(-2, 900), (-1, 950)], 0, 24, 20),
        ("nothing used yet", 0, 1000, 5, [], 0, 24, None),
        ("pay-as-you-go, no history: unknown", 50, 100, 12, [], None, None, None),
        ("pay-as-you-go, steady burn", 40, 100, 12, [(10, 20), (11, 30)], None, None, 18),
        ("pay-as-you-go, top-up in history", 20, 100, 12, [(10, 80), (11, 10)], None, None, 20),
        ("too short a span: window so far", 10, 100, 1, [(1 - 1 / 3600, 9)], 0, 24, 10),
    ],
)
def test_forecast(case, used, total, now_h, history, window_h, reset_h, expected_h):
    """Exhaustion at the recent (or window) burn rate; None when not burning or when the reset comes first."""
    result = forecast_exhaustion(
        used,
        total,
        at(now_h),
        [(at(h), u) for h, u in history],
        window_start=None if window_h is None else at(window_h),
        next_reset=None if reset_h is None else at(reset_h),
    )
    if expected_h is None:
        assert result is None
    else:
        assert result == pytest.approx(at(expected_h), abs=dt.timedelta(seconds=1))


def test_burn_rate_units_per_second():
    """The burn rate is in units per second."""
    assert burn_rate([(at(0), 0)], at(1), 3600) == pytest.approx(1.0)

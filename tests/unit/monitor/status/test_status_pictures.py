"""The status page's SVG pictures and formatting: sparkline, quota bar, uptime bars."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from otel_monitor.monitor.status.model import UptimeDay
from otel_monitor.monitor.status.render import format_duration
from otel_monitor.monitor.status.svg import quota_bar_svg, sparkline_svg, uptime_bars_svg, uptime_color

DAY = dt.date(2026, 11, 30)


@pytest.mark.parametrize(
    ("values", "polylines", "points"),
    [
        ([], 0, 0),
        ([None, 0.5, None], 0, 0),  # one known value says nothing about a trend
        ([0.1, 0.2, 0.4], 1, 3),
        ([0.1, 0.2, None, 0.3, 0.4], 2, 4),  # a gap splits the line
        ([0.1, None, 0.3, None, 0.4], 0, 0),  # only isolated points: nothing to join
    ],
)
def test_sparkline_joins_the_known_values_and_breaks_at_gaps(values, polylines, points):
    """One polyline per run of two or more known values, none when fewer than two values are known."""
    svg = str(sparkline_svg(values))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<polyline") == polylines
    assert sum(len(found.split()) for found in re.findall(r'points="([^"]*)"', svg)) == points


def test_sparkline_scales_to_its_box():
    """The largest value touches the top, every point lies inside the box."""
    svg = str(sparkline_svg([0.0, 1.0, 2.0], width=100, height=20))
    coordinates = [tuple(map(float, p.split(","))) for p in re.search(r'points="([^"]*)"', svg).group(1).split()]
    assert coordinates[0] == (0.0, 19.0) and coordinates[-1] == (100.0, 1.0)
    assert all(0 <= x <= 100 and 0 <= y <= 20 for x, y in coordinates)


@pytest.mark.parametrize(
    ("percentage", "status", "filled", "color"),
    [
        (None, "unknown", "0.0", "#cf3030"),
        (25.0, "healthy", "30.0", "#2e9d4f"),
        (85.0, "warning", "102.0", "#d99a06"),
        (150.0, "exceeded", "120.0", "#cf3030"),  # capped at the full bar
    ],
)
def test_quota_bar_fills_to_the_share_used(percentage, status, filled, color):
    """The bar's fill is the share used of a 120-wide bar, coloured by the quota's status."""
    svg = str(quota_bar_svg(percentage, status, width=120))
    assert f'<rect width="{filled}" height="10" fill="{color}"/>' in svg


@pytest.mark.parametrize(
    ("up", "total", "color"),
    [(0, 0, "#c9ccd1"), (100, 100, "#2e9d4f"), (95, 100, "#d99a06"), (50, 100, "#cf3030")],
)
def test_uptime_colors(up, total, color):
    """No data grey, all up green, 90-99.9 % amber, below red."""
    assert uptime_color(UptimeDay(day=DAY, checks_up=up, checks_total=total)) == color


def test_uptime_bars_draw_every_day_and_mark_days_without_data():
    """One bar per day in order, each with its tooltip; days without checks are no-data bars."""
    days = [
        UptimeDay(day=DAY - dt.timedelta(days=2 - i), checks_up=u, checks_total=t)
        for i, (u, t) in enumerate([(0, 0), (9, 10), (10, 10)])
    ]
    svg = str(uptime_bars_svg(days))
    assert svg.count("<rect") == 3 and svg.count('class="no-data"') == 1
    assert re.findall(r"<title>([^<]*)</title>", svg) == [
        "2026-11-28: no data",
        "2026-11-29: 90.00 % up",
        "2026-11-30: 100.00 % up",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "\u2014"),
        (40, "40 s"),
        (300, "5 min"),
        (3 * 3600 + 12 * 60, "3 h 12 min"),
        (2 * 86400 + 3 * 3600, "2 d 3 h"),
    ],
)
def test_reset_countdown_text(seconds, text):
    """The countdown to a quota's reset, in its two largest units."""
    assert format_duration(seconds) == text

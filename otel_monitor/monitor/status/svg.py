"""The status page's pictures as inline SVG, drawn on the server: a latency sparkline, a quota bar, uptime bars."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from otel_monitor.monitor.status.model import UptimeDay

__all__ = ["sparkline_svg", "quota_bar_svg", "uptime_bars_svg", "uptime_color"]

_GREEN, _AMBER, _RED, _GREY = "#2e9d4f", "#d99a06", "#cf3030", "#c9ccd1"


def sparkline_svg(values: Sequence[float | None], *, width: int = 120, height: int = 24) -> Markup:
    """A polyline through the known values, scaled to the largest (gaps where a value is None); an empty box when
    there are fewer than two values."""
    known = [value for value in values if value is not None]
    label = "no data" if len(known) < 2 else f"latency from {min(known):.3g} s to {max(known):.3g} s"
    parts = [
        f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}">'
    ]
    if len(known) >= 2:
        top = max(known) or 1.0
        step = width / (len(values) - 1)
        segment: list[str] = []
        for index, value in enumerate([*values, None]):
            if value is None:
                if len(segment) > 1:
                    parts.append(
                        f'<polyline fill="none" stroke="#3366cc" stroke-width="1.5" points="{" ".join(segment)}"/>'
                    )
                segment = []
                continue
            y = height - 1 - (value / top) * (height - 2)
            segment.append(f"{index * step:.1f},{y:.1f}")
    parts.append("</svg>")
    return Markup("".join(parts))


def quota_bar_svg(percentage: float | None, status: str, *, width: int = 120, height: int = 10) -> Markup:
    """A bar filled to ``percentage`` (capped at 100), coloured by the quota's status; empty when unknown."""
    share = 0.0 if percentage is None else max(0.0, min(percentage, 100.0)) / 100
    color = {"healthy": _GREEN, "warning": _AMBER}.get(status, _RED)
    label = "unknown" if percentage is None else f"{percentage:.1f} % used"
    return Markup(
        f'<svg class="quota-bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><rect width="{width}" height="{height}" fill="{_GREY}"/>'
        f'<rect width="{share * width:.1f}" height="{height}" fill="{color}"/></svg>'
    )


def uptime_color(day: UptimeDay) -> str:
    """Green all up, amber from 99 % down to 90 %, red below; grey without data."""
    if day.checks_total == 0:
        return _GREY
    ratio = day.checks_up / day.checks_total
    return _GREEN if ratio >= 0.999 else _AMBER if ratio >= 0.9 else _RED


def uptime_bars_svg(days: Sequence[UptimeDay], *, bar_width: int = 3, gap: int = 1, height: int = 20) -> Markup:
    """One bar per day, oldest on the left, each with a tooltip (day and share up, or "no data")."""
    width = len(days) * (bar_width + gap)
    parts = [
        f'<svg class="uptime" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="uptime of the last {len(days)} days">'
    ]
    for index, day in enumerate(days):
        share = "no data" if day.checks_total == 0 else f"{100 * day.checks_up / day.checks_total:.2f} % up"
        parts.append(
            f'<rect class="{"no-data" if day.checks_total == 0 else "day"}" x="{index * (bar_width + gap)}" '
            f'width="{bar_width}" height="{height}" fill="{uptime_color(day)}"><title>{day.day.isoformat()}: '
            f"{escape(share)}</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))

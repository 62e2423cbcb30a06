"""Renders the status summary as the HTML page (Jinja2, autoescaped, the template shipped in the package)."""

from __future__ import annotations

import datetime as dt
import functools

from jinja2 import Environment, PackageLoader, select_autoescape

from otel_monitor.monitor.alerting.acknowledgement import Acknowledgement
from otel_monitor.monitor.alerting.model import Alert
from otel_monitor.monitor.status.model import StatusSummary
from otel_monitor.monitor.status.svg import quota_bar_svg, sparkline_svg, uptime_bars_svg

__all__ = [
    "render_status_page",
    "render_alert_page",
    "render_no_alert_page",
    "format_duration",
    "format_latency_ms",
    "format_share",
]


def format_duration(seconds: float | None) -> str:
    """``2 d 3 h``, ``3 h 12 min``, ``5 min``, ``40 s``; an em dash when unknown."""
    if seconds is None:
        return "\u2014"
    seconds = int(seconds)
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def format_latency_ms(milliseconds: float | None) -> str:
    return "\u2014" if milliseconds is None else f"{milliseconds:.1f} ms"


def format_share(ratio: float | None) -> str:
    return "\u2014" if ratio is None else f"{100 * ratio:.1f} %"


def _iso(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@functools.cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("otel_monitor.monitor.status", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(duration=format_duration, latency=format_latency_ms, share=format_share, iso=_iso)
    environment.globals.update(sparkline=sparkline_svg, quota_bar=quota_bar_svg, uptime_bars=uptime_bars_svg)
    return environment


def render_status_page(summary: StatusSummary, *, websocket_path: str) -> str:
    """The page; its script follows ``websocket_path`` live. A protected page reaches browsers through a proxy that
    adds the token, to its WebSocket as to the page; a public page's WebSocket needs none for the status messages."""
    return _environment().get_template("status.html").render(summary=summary, websocket_path=websocket_path)


def render_alert_page(
    alert: Alert,
    *,
    acknowledgement: Acknowledgement | None,
    silenced_by: list[str],
    ack_path: str,
    ack_url: str,
    token_needed: bool,
) -> str:
    """One alert's page, where a notification's link leads: its details, its acknowledgement, and (firing) a form
    that posts one to ``ack_path`` (with a token field when the API needs tokens); ``ack_url`` for the curl line
    shown without JavaScript."""
    return (
        _environment()
        .get_template("alert.html")
        .render(
            alert=alert,
            acknowledgement=acknowledgement,
            silenced_by=silenced_by,
            ack_path=ack_path,
            ack_url=ack_url,
            token_needed=token_needed,
        )
    )


def render_no_alert_page(fingerprint: str) -> str:
    """The page of a fingerprint no alert has (a link to an alert of another monitor, or a mistyped one)."""
    return _environment().get_template("no_alert.html").render(fingerprint=fingerprint)

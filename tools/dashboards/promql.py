"""The PromQL idioms the dashboards repeat, written once: exact counts over the range, shares, rates, quantiles."""

from __future__ import annotations

__all__ = ["over_range", "quantile", "rate", "selector", "share", "total"]


def selector(metric: str, *matchers: str) -> str:
    """``metric{m1, m2}`` (``metric`` alone without matchers); a matcher is written as PromQL, e.g. ``a="b"``."""
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def over_range(series: str) -> str:
    """A counter's increase over the dashboard's range, exact: a series born inside the range counts from zero
    (``increase`` would extrapolate, and miss a series' first sample)."""
    return f"((max_over_time({series}[$__range]) - {series} offset $__range) or max_over_time({series}[$__range]))"


def rate(series: str) -> str:
    """Per-second rate over Grafana's rate interval (at least four scrapes)."""
    return f"rate({series}[$__rate_interval])"


def total(expr: str, by: str = "") -> str:
    """``sum(expr)``, or ``sum by (by) (expr)``."""
    return f"sum by ({by}) ({expr})" if by else f"sum({expr})"


def share(part: str, whole: str, by: str = "") -> str:
    """``part`` of ``whole``, summed (by ``by``); 0, not no data, when ``part`` has no series but ``whole`` has."""
    return f"(\n  {total(part, by)}\n  or\n  {total(whole, by)} * 0\n)\n/\n{total(whole, by)}"


def quantile(q: float, buckets: str, by: str = "") -> str:
    """``histogram_quantile`` of histogram ``buckets`` (an expression over ``_bucket`` series), by ``by``."""
    return f"histogram_quantile({q:g}, {total(buckets, ', '.join(filter(None, (by, 'le'))))})"

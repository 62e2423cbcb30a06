"""The status of a quota from the share used: healthy, warning, critical, exceeded (pure functions)."""

from __future__ import annotations

from otel_monitor.monitor.quota.config import QuotaThresholds

__all__ = ["HEALTHY", "WARNING", "CRITICAL", "EXCEEDED", "UNKNOWN", "STATUSES", "usage_ratio", "quota_status"]

HEALTHY = "healthy"
WARNING = "warning"
CRITICAL = "critical"
EXCEEDED = "exceeded"
# No reading yet (credentials not configured, the source never answered).
UNKNOWN = "unknown"
STATUSES = (HEALTHY, WARNING, CRITICAL, EXCEEDED, UNKNOWN)

_DEFAULT_THRESHOLDS = QuotaThresholds()


def usage_ratio(used: float, total: float) -> float:
    """Share of the quota used (0.85 for 85 %), rounded to 12 places so 0.9 computed equals 0.9 written."""
    if total <= 0:
        raise ValueError(f"quota total must be positive, got {total!r}")
    return round(used / total, 12)


def quota_status(ratio: float | None, thresholds: QuotaThresholds = _DEFAULT_THRESHOLDS) -> str:
    """``exceeded`` at >= 100 %; ``critical`` at >= critical (90 % itself is critical, as the monitor's
    "Quota critical" log); ``warning`` at >= warning (80 %); else ``healthy``; ``unknown`` without a reading."""
    if ratio is None:
        return UNKNOWN
    if ratio >= 1.0:
        return EXCEEDED
    if ratio >= thresholds.critical:
        return CRITICAL
    if ratio >= thresholds.warning:
        return WARNING
    return HEALTHY

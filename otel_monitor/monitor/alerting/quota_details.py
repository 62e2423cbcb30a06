"""What a quota alert's log line adds to its details, so the operator sees how much is left without a lookup:
quota_remaining, quota_total, quota_percentage and reset_date of the provider, from the quota service's latest
reading."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from otel_monitor._utc_time import iso_utc
from otel_monitor.instrument.error_codes import ApiErrorCode, ProviderFailure, provider_error_code
from otel_monitor.monitor.alerting.model import Alert

__all__ = ["quota_details"]


def _is_quota_alert(alert: Alert) -> bool:
    service = alert.service
    return service is not None and alert.error_code in (
        provider_error_code(service, ProviderFailure.QUOTA_EXCEEDED),
        ApiErrorCode.QUOTA_USAGE_WARNING.value,
    )


def quota_details(latest: Callable[[], Iterable]) -> Callable[[Alert], Mapping[str, object]]:
    """For an alert on a provider's quota, ``{"quota_remaining": 8, "quota_total": 100, "quota_percentage": 8,
    "reset_date": "2025-11-01T00:00:00Z"}`` (the share left, as a "P1 Alert: Quota Low" line shows it) from
    ``latest()`` (``QuotaService.latest``); nothing for other alerts or before the quota was read."""

    def details(alert: Alert) -> Mapping[str, object]:
        if not _is_quota_alert(alert):
            return {}
        view = next((v for v in latest() if v.service == alert.service), None)
        if view is None or view.used is None or not view.total:
            return {}
        remaining = max(view.total - view.used, 0.0)
        return {
            "quota_remaining": _number(remaining),
            "quota_total": _number(view.total),
            "quota_percentage": _number(100.0 * remaining / view.total),
            "reset_date": iso_utc(view.reset_date),
        }

    return details


def _number(value: float) -> int | float:
    value = round(value, 2)
    return int(value) if float(value).is_integer() else value

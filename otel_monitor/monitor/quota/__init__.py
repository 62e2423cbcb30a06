"""Quota tracking of the paid providers: usage history, reset schedules, alerts, gauges and the quota endpoint."""

from otel_monitor.monitor.quota.config import QuotaConfig, QuotaThresholds, ResetSchedule
from otel_monitor.monitor.quota.monitor import QuotaCheck, QuotaMonitor
from otel_monitor.monitor.quota.reset_schedule import ResetRule, next_reset, window_start
from otel_monitor.monitor.quota.status import quota_status
from otel_monitor.monitor.quota.store import QuotaStore, QuotaStoreError, QuotaUsage

__all__ = [
    "QuotaCheck",
    "QuotaConfig",
    "QuotaMonitor",
    "QuotaStore",
    "QuotaStoreError",
    "QuotaThresholds",
    "QuotaUsage",
    "ResetRule",
    "ResetSchedule",
    "next_reset",
    "quota_status",
    "window_start",
]

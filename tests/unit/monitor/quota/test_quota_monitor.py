"""QuotaMonitor: the required two tests as written, the thresholds table, and a stored row for every check."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from otel_monitor.monitor.quota import QuotaMonitor
from otel_monitor.monitor.quota.config import QuotaThresholds
from otel_monitor.monitor.quota.status import quota_status

NOW = dt.datetime(2026, 3, 8, 12, 0, tzinfo=dt.UTC)


@pytest.mark.asyncio
async def test_quota_warning(caplog):
    """測試配額警告"""
    monitor = QuotaMonitor()

    # 模擬配額使用 85%
    await monitor.check_quota("gemini", 850, 1000)

    # 驗證警告日誌
    assert any("Quota warning" in record.message for record in caplog.records)


@pytest.mark.asyncio
async def test_quota_critical(caplog):
    """測試配額嚴重警告"""
    monitor = QuotaMonitor()

    # 模擬配額使用 95%
    await monitor.check_quota("d-id", 95, 100)

    # 驗證錯誤日誌
    assert any("Quota critical" in record.message for record in caplog.records)


@pytest.mark.parametrize(
    "used, status, message, level, priority",
    [
        (799, "healthy", None, None, None),
        (800, "warning", "Quota warning", logging.WARNING, "P2"),
        (899, "warning", "Quota warning", logging.WARNING, "P2"),
        (900, "critical", "Quota critical", logging.ERROR, "P1"),
        (999, "critical", "Quota critical", logging.ERROR, "P1"),
        (1000, "exceeded", "Quota critical", logging.ERROR, "P1"),
        (1200, "exceeded", "Quota critical", logging.ERROR, "P1"),
    ],
)
@pytest.mark.asyncio
async def test_thresholds(caplog, used, status, message, level, priority):
    """79.9 % is silent; 80-89.9 % warn (P2); 90 % and above are critical (P1); 100 % and above exceeded."""
    caplog.set_level(logging.DEBUG, logger="otel_monitor.quota")
    monitor = QuotaMonitor(clock=lambda: NOW)
    check = await monitor.check_quota("youtube", used, 1000)
    assert (check.status, check.percentage, check.stored) == (status, used / 10, True)
    quota_records = [r for r in caplog.records if r.message.startswith("Quota ")]
    if message is None:
        assert quota_records == []
    else:
        [record] = quota_records
        assert (record.message, record.levelno, record.alert_priority) == (message, level, priority)
        assert (record.service, record.quota_used, record.quota_total) == ("youtube", used, 1000)
        assert record.quota_percentage == pytest.approx(used / 10)
        assert record.reset_date == "2026-03-09T07:00:00Z"
        if level == logging.ERROR:
            assert record.error_code == "YOUTUBE_QUOTA_EXCEEDED"
    [row] = monitor.store.history("youtube")
    assert (row.used, row.total, row.percentage, row.timestamp) == (used, 1000, used / 10, NOW)


@pytest.mark.asyncio
async def test_every_check_is_stored():
    """Each check adds one QuotaUsage row, quiet or not."""
    monitor = QuotaMonitor()
    for used in (10, 850, 95):
        await monitor.check_quota("d-id", used, 100 if used < 100 else 1000)
    assert monitor.store.count("d-id") == 3


@pytest.mark.parametrize(
    "service, reset_date",
    [
        ("gemini", "2026-03-09T00:00:00Z"),
        ("d-id", "2026-04-01T00:00:00Z"),
        ("d_id", "2026-04-01T00:00:00Z"),
        ("stability", None),
    ],
)
@pytest.mark.asyncio
async def test_reset_date_in_the_log(caplog, service, reset_date):
    """The alert names the service key and when the quota resets (null for pay-as-you-go)."""
    check = await QuotaMonitor(clock=lambda: NOW).check_quota(service, 95, 100)
    [record] = [r for r in caplog.records if r.message == "Quota critical"]
    assert (record.service, record.reset_date) == (service.replace("_", "-"), reset_date)
    assert check.service == service.replace("_", "-")


@pytest.mark.parametrize(
    "service, used, total, error",
    [
        ("openai", 1, 10, "unknown service"),
        ("gemini", 1, 0, "must be positive"),
        ("gemini", 1, -5, "must be positive"),
    ],
)
@pytest.mark.asyncio
async def test_bad_arguments(service, used, total, error):
    """An unknown service or a non-positive total is refused before anything is logged or stored."""
    monitor = QuotaMonitor()
    with pytest.raises(ValueError, match=error):
        await monitor.check_quota(service, used, total)
    assert monitor.store.count() == 0


@pytest.mark.parametrize(
    "ratio, status",
    [
        (None, "unknown"),
        (0.0, "healthy"),
        (0.799, "healthy"),
        (0.8, "warning"),
        (0.899, "warning"),
        (0.9, "critical"),
        (0.999, "critical"),
        (1.0, "exceeded"),
        (1.2, "exceeded"),
    ],
)
def test_status_boundaries(ratio, status):
    """Status boundaries: warning from 80 %, critical from 90 % (inclusive), exceeded from 100 %."""
    assert quota_status(ratio) == status


@pytest.mark.asyncio
async def test_configured_thresholds(caplog):
    """Thresholds from the config move the alerts."""
    monitor = QuotaMonitor(thresholds=QuotaThresholds(warning=0.5, critical=0.7))
    assert monitor.thresholds == {"warning": 0.5, "critical": 0.7}
    assert (await monitor.check_quota("gemini", 60, 100)).status == "warning"
    assert (await monitor.check_quota("gemini", 70, 100)).status == "critical"
    assert [r.message for r in caplog.records if r.message.startswith("Quota")] == ["Quota warning", "Quota critical"]

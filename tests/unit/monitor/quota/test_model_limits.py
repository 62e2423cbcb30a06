"""Gemini's per-model limits: each model's three limits with their reset, in ?service=gemini only, and as gauges."""

from __future__ import annotations

import datetime as dt

import pytest

from otel_monitor.instrument.usage_counter import ModelUsage
from otel_monitor.monitor.quota.config import QuotaConfig, QuotaThresholds
from otel_monitor.monitor.quota.metrics import QuotaMetricNames
from otel_monitor.monitor.quota.model_limits import ModelLimit, ModelLimitsSource, models_json
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.quota.store import QuotaStore
from otel_monitor.monitor.quota.testing import FixedQuotaSource
from otel_monitor.testing import in_memory_telemetry

UTC = dt.UTC
FLASH = ModelLimit(requests_per_minute=15, tokens_per_minute=1_000_000, requests_per_day=1500)


class Counts:
    """Per-model counts as the UsageCounter would give them; records the day window each read asked for."""

    def __init__(self, usage: dict[str, ModelUsage]) -> None:
        self.usage = usage
        self.since: list[dt.datetime] = []

    def models(self, service: str) -> set[str]:
        return set(self.usage)

    def model_usage(self, service, model, since, until=None) -> ModelUsage:
        self.since.append(since)
        return self.usage.get(model, ModelUsage(0, 0, 0))


@pytest.mark.parametrize(
    "now, usage, expected",
    [
        # summer (PDT): the day started 07:00Z; the minute ends at the next whole minute
        (
            dt.datetime(2026, 7, 1, 12, 30, 20, tzinfo=UTC),
            ModelUsage(12, 250_000, 1350),
            {
                "per-minute requests": (12, 15, 80, "warning", "2026-07-01T12:31:00Z"),
                "per-minute input tokens": (250000, 1000000, 25, "healthy", "2026-07-01T12:31:00Z"),
                "requests per day": (1350, 1500, 90, "critical", "2026-07-02T07:00:00Z"),
            },
        ),
        # winter (PST): midnight Pacific is 08:00Z; a limit passed reads exceeded
        (
            dt.datetime(2026, 1, 15, 7, 59, 59, tzinfo=UTC),
            ModelUsage(16, 0, 1500),
            {
                "per-minute requests": (16, 15, 106.67, "exceeded", "2026-01-15T08:00:00Z"),
                "per-minute input tokens": (0, 1000000, 0, "healthy", "2026-01-15T08:00:00Z"),
                "requests per day": (1500, 1500, 100, "exceeded", "2026-01-15T08:00:00Z"),
            },
        ),
    ],
)
@pytest.mark.asyncio
async def test_model_limits_by_limit(now, usage, expected):
    """Used, total, percentage, status and reset of each limit; per day from midnight Pacific."""
    counts = Counts({"gemini-2.0-flash": usage})
    views = await ModelLimitsSource("gemini", counts, {"gemini-2.0-flash": FLASH}).read(now)
    entry = models_json(views, QuotaThresholds())["gemini-2.0-flash"]
    assert {
        limit: (e["used"], e["total"], e["percentage"], e["status"], e["reset_date"]) for limit, e in entry.items()
    } == expected
    pacific_midnight = {7: dt.datetime(2026, 7, 1, 7, tzinfo=UTC), 1: dt.datetime(2026, 1, 14, 8, tzinfo=UTC)}
    assert counts.since == [pacific_midnight[now.month]]


@pytest.mark.asyncio
async def test_models_called_but_not_configured_show_counts_only():
    """A model called but not configured shows its counts with no total; a configured one not called shows 0."""
    counts = Counts({"gemini-2.5-pro": ModelUsage(2, 900, 7)})
    views = await ModelLimitsSource("gemini", counts, {"gemini-2.0-flash": FLASH}).read(
        dt.datetime(2026, 7, 1, tzinfo=UTC)
    )
    models = models_json(views, QuotaThresholds())
    assert models["gemini-2.5-pro"]["requests per day"] == {
        "used": 7, "total": None, "percentage": None, "status": "unknown", "reset_date": "2026-07-01T07:00:00Z"
    }  # fmt: skip
    assert models["gemini-2.0-flash"]["per-minute requests"]["used"] == 0


@pytest.mark.asyncio
async def test_only_the_gemini_report_breaks_down_by_model():
    """?service=gemini adds models; the default answer keeps its shape; the gauges carry model and limit."""
    now = dt.datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
    captured = in_memory_telemetry()
    counts = Counts({"gemini-2.0-flash": ModelUsage(3, 1200, 40)})
    service = QuotaService(
        QuotaStore(),
        {"gemini": FixedQuotaSource("gemini", 40, 1000, QuotaConfig().reset_rules()["gemini"])},
        clock=lambda: now,
        meter_provider=captured.meter_provider,
        model_limits=ModelLimitsSource("gemini", counts, {"gemini-2.0-flash": FLASH}),
    )
    assert "models" not in (await service.report())["quotas"]["gemini"]
    gemini = (await service.report("gemini"))["quotas"]["gemini"]
    assert gemini["models"]["gemini-2.0-flash"]["per-minute requests"]["used"] == 3
    collection = captured.collect()
    labels = {"service": "gemini", "model": "gemini-2.0-flash", "limit": "per-minute input tokens"}
    assert collection.value(QuotaMetricNames.MODEL_USED, **labels) == 1200
    assert collection.value(QuotaMetricNames.MODEL_LIMIT, **labels) == 1_000_000
    assert collection.value(QuotaMetricNames.MODEL_USAGE, **labels) == pytest.approx(0.0012)


def test_default_model_limits_are_configured():
    """The shipped config has example limits for a current model; a bad figure is refused."""
    assert QuotaConfig().gemini.models["gemini-2.0-flash"].requests_per_day == 1500
    with pytest.raises(ValueError, match="requests_per_minute"):
        QuotaConfig.model_validate(
            {"gemini": {"models": {"m": {"requests_per_minute": 0, "tokens_per_minute": 1, "requests_per_day": 1}}}}
        )

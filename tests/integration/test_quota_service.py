"""QuotaService end to end (fake providers, real Redis, SQLite file), its polling cadence and its gauges."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

import httpx
import pytest
import redis
from fastapi import FastAPI

from examples.demo_backend.launcher import DEMO_SECRETS
from otel_monitor.instrument.usage_counter import UsageCounter
from otel_monitor.monitor.quota.config import QuotaConfig
from otel_monitor.monitor.quota.metrics import QuotaMetricNames
from otel_monitor.monitor.quota.reset_schedule import ResetRule
from otel_monitor.monitor.quota.router import build_quota_router
from otel_monitor.monitor.quota.scheduler import PollScheduler
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.quota.store import QuotaStore
from otel_monitor.monitor.quota.testing import FixedQuotaSource
from otel_monitor.testing import CapturedTelemetry, in_memory_telemetry
from tests.support.stacks import private_stack

UTC = dt.UTC


@pytest.fixture(scope="module")
def redis_url():
    """A private Redis on a free port, for this module."""
    with private_stack("otel-monitor-quota-service-", "redis") as stack:
        yield stack.redis_url


def gauges(captured: CapturedTelemetry) -> dict[str, dict[str, float]]:
    """{instrument name: {service: value}} of one collection."""
    collection = captured.collect()
    return {name: collection.values_by(name, "service") for name in collection.names()}


@pytest.mark.stack
@pytest.mark.asyncio
async def test_from_config_end_to_end(fakes, redis_url, tmp_path, caplog):
    """Started from config, it polls and stores every provider; the endpoint shows counted units and balances."""
    caplog.set_level(logging.INFO, logger="otel_monitor")
    prefix = f"test:{uuid.uuid4().hex}"
    config = QuotaConfig.model_validate(
        {
            "gemini": {"total": 100, "poll_interval_seconds": 0.2},
            "youtube": {"poll_interval_seconds": 0.2},
            "d_id": {
                "api_key": DEMO_SECRETS["did_api_key"],
                "base_url": fakes.base_url("d-id"),
                "poll_interval_seconds": 0.2,
            },
            "stability": {
                "api_key": DEMO_SECRETS["stability_api_key"],
                "base_url": fakes.base_url("stability"),
                "baseline": 1000,
                "poll_interval_seconds": 0.2,
            },
            "store_url": f"sqlite:///{tmp_path / 'quota.db'}",
            "redis_url": redis_url,
            "usage_prefix": prefix,
        }
    )
    client = redis.Redis.from_url(redis_url)
    counter = UsageCounter(client, prefix=prefix, background=False)
    counter.record("gemini", 85)
    counter.record("youtube", 1600)
    captured = in_memory_telemetry()
    service = QuotaService.from_config(config, meter_provider=captured.meter_provider)
    await service.start()
    try:
        for _ in range(100):
            if all(service.store.count(key) >= 2 for key in ("gemini", "stability", "d-id", "youtube")):
                break
            await asyncio.sleep(0.05)
        app = FastAPI()
        app.include_router(build_quota_router(service))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://quota") as http:
            body = (await http.get("/api/v1/system/quota")).json()
    finally:
        await service.stop()
        client.close()
    quotas = body["quotas"]
    assert (quotas["gemini"]["used"], quotas["gemini"]["total"], quotas["gemini"]["status"]) == (85, 100, "warning")
    assert (quotas["youtube"]["used"], quotas["youtube"]["percentage"]) == (1600, 16)
    did = fakes.did_account
    assert (quotas["d_id"]["used"], quotas["d_id"]["total"]) == (did.total - did.remaining, did.total)
    assert quotas["stability"]["used"] == pytest.approx(1000 - fakes.stability_account.credits)
    assert quotas["stability"]["reset_date"] is None and quotas["d_id"]["reset_date"].endswith("-01T00:00:00Z")
    assert not any(entry["stale"] for entry in quotas.values())
    assert any(r.message == "Quota warning" and r.service == "gemini" for r in caplog.records)
    assert gauges(captured)[QuotaMetricNames.USED]["gemini"] == 85
    assert service.scheduler.running is False


@pytest.mark.asyncio
async def test_polls_at_each_interval_and_survive_failures():
    """Each job runs at once and then every interval in its own task; a failing job keeps being polled."""
    calls = {"steady": 0, "broken": 0}

    async def steady():
        calls["steady"] += 1

    async def broken():
        calls["broken"] += 1
        raise RuntimeError("provider exploded")

    scheduler = PollScheduler({"steady": (0.01, steady), "broken": (0.01, broken)})
    await scheduler.start()
    await asyncio.sleep(0.2)
    await scheduler.stop()
    assert calls["steady"] >= 3 and calls["broken"] >= 3
    assert scheduler.running is False
    settled = dict(calls)
    await asyncio.sleep(0.05)
    assert calls == settled


def test_configured_intervals_reach_the_scheduler():
    """From config: hourly polls, YouTube every 15 minutes; ``poll: false`` schedules nothing."""
    config = QuotaConfig(redis_url=None, store_url="sqlite://")
    assert QuotaService.from_config(config).scheduler.intervals == {
        "gemini": 3600,
        "stability": 3600,
        "d-id": 3600,
        "youtube": 900,
    }
    assert QuotaService.from_config(config.model_copy(update={"poll": False})).scheduler.intervals == {}


@pytest.mark.asyncio
async def test_gauges():
    """The gauges report used, limit, ratio, time to reset and to exhaustion, and staleness, by service."""
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    captured = in_memory_telemetry()
    service = QuotaService(
        QuotaStore(),
        {
            "gemini": FixedQuotaSource("gemini", 600, 1000, ResetRule.daily()),
            "stability": FixedQuotaSource("stability", 10, 100, stale=True, error_code="STABILITY_SERVER_ERROR"),
        },
        clock=lambda: now,
        meter_provider=captured.meter_provider,
    )
    await service.poll("gemini")
    await service.poll("stability")
    values = gauges(captured)
    assert values[QuotaMetricNames.USED] == {"gemini": 600, "stability": 10}
    assert values[QuotaMetricNames.LIMIT] == {"gemini": 1000, "stability": 100}
    assert values[QuotaMetricNames.USAGE] == {"gemini": 0.6, "stability": 0.1}
    assert values[QuotaMetricNames.TIME_TO_RESET] == {"gemini": 12 * 3600}
    # 600 in the 12 hours of the window so far: 50 an hour, 400 left: 8 hours
    assert values[QuotaMetricNames.TIME_TO_EXHAUSTION] == {"gemini": pytest.approx(8 * 3600)}
    assert values[QuotaMetricNames.STALE] == {"gemini": 0, "stability": 1}


@pytest.mark.asyncio
async def test_unknown_readings_are_not_checked():
    """A source with no reading yet (no credentials) stores nothing and logs no alert."""
    store = QuotaStore()
    service = QuotaService(store, {"d-id": FixedQuotaSource("d-id", None, None, ResetRule.monthly())})
    view = await service.poll("d-id")
    assert (view.status, store.count()) == ("unknown", 0)

"""Quota readings fresh where it matters: refusals flip a quota to exceeded, stale balances are re-read once, a quota
past 80 % is polled every 15 minutes, and a provider running out of credits mid-run raises its shipped quota alert."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import uuid

import httpx
import pytest
import redis
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from examples.demo_backend.launcher import DEMO_SECRETS, fake_provider_credentials
from examples.fake_providers import FakeProviders
from otel_monitor.instrument.external_calls import ExternalCallRecorder
from otel_monitor.instrument.failure_streaks import LocalFailureStreaks
from otel_monitor.instrument.usage_counter import UsageCounter
from otel_monitor.monitor.alerting.evaluate.evaluator import Evaluator
from otel_monitor.monitor.alerting.evaluate.sources import PrometheusSource
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.monitor.quota.balances import StabilityBalancePoller
from otel_monitor.monitor.quota.config import QuotaConfig
from otel_monitor.monitor.quota.reset_schedule import ResetRule
from otel_monitor.monitor.quota.router import build_quota_router
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.quota.store import QuotaStore
from otel_monitor.monitor.quota.testing import FixedQuotaSource
from otel_monitor.monitor.quota.usage import BalanceQuotaSource, CounterQuotaSource, QuotaReading, apply_refusal
from tests.support.backends import prom_values
from tests.support.clocks import Clock
from tests.support.paths import REPO_ROOT
from tests.support.stacks import private_stack

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SHIPPED_RULES = REPO_ROOT / "config" / "alert-rules.yaml"
BALANCE_PATH = "/v1/user/balance"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def get_quota(quota: QuotaService, **params) -> dict:
    app = FastAPI()
    app.include_router(build_quota_router(quota))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://quota") as client:
        response = await client.get("/api/v1/system/quota", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def critical_lines(caplog, service: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "Quota critical" and getattr(r, "service", None) == service]


# -- the refusal as evidence (pure) ---------------------------------------------------------------------------------
def _reading(used, total) -> QuotaReading:
    return QuotaReading("stability", used, total, "credits", None, None, at(100))


@pytest.mark.parametrize(
    "used, total, refused, evidence, expected_used, expected_code",
    [
        (10, 100, None, at(0), 10, None),  # no refusal: the figures stand
        (10, 100, at(50), at(0), 100, "STABILITY_QUOTA_EXCEEDED"),  # refused after the last balance read: exceeded
        (10, 100, at(50), at(50), 10, None),  # read at the refusal's moment: the reading wins
        (10, 100, at(50), at(60), 10, None),  # re-read since: the figures stand again
        (120, 100, at(50), at(0), 120, "STABILITY_QUOTA_EXCEEDED"),  # counted past the limit: the count stays
        (None, 100, at(50), None, 100, "STABILITY_QUOTA_EXCEEDED"),  # never read: the refusal alone says exceeded
        (None, None, at(50), None, None, "STABILITY_QUOTA_EXCEEDED"),  # no total known: only the code tells
    ],
)
def test_a_refusal_after_the_reading_makes_it_exceeded(used, total, refused, evidence, expected_used, expected_code):
    """A refusal newer than the figures' evidence sets used to the total (or keeps a higher count) with the code."""
    reading = apply_refusal(_reading(used, total), refused, evidence)
    assert (reading.used, reading.total, reading.error_code) == (expected_used, total, expected_code)
    assert reading.refused_at == (refused if expected_code else None)


# -- the service: flip, check once, clear ---------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_refusal_flips_the_view_checks_once_and_clears(caplog):
    """The next answer after a refusal says exceeded; it is logged "Quota critical" and stored once, however often
    asked; once the figures stand again, a new refusal is checked again."""
    caplog.set_level(logging.INFO, logger="otel_monitor")
    clock = Clock(T0)
    store = QuotaStore()
    source = FixedQuotaSource("stability", 10, 100)
    service = QuotaService(store, {"stability": source}, clock=clock)
    assert (await get_quota(service))["quotas"]["stability"]["status"] == "healthy"
    source.refused_at = at(-1)
    for _ in range(3):
        clock.now += dt.timedelta(seconds=1)
        entry = (await get_quota(service))["quotas"]["stability"]
        assert (entry["used"], entry["percentage"], entry["status"]) == (100, 100, "exceeded")
        assert (entry["error_code"], entry["refused_at"]) == ("STABILITY_QUOTA_EXCEEDED", "2026-03-10T11:59:59Z")
    assert [(s.used, s.percentage) for s in store.history("stability")] == [(100, 100)]
    (line,) = critical_lines(caplog, "stability")
    assert (line.alert_priority, line.error_code, line.quota_refused_at) == (
        "P1",
        "STABILITY_QUOTA_EXCEEDED",
        "2026-03-10T11:59:59Z",
    )
    source.refused_at = None  # a balance read newer than the refusal
    assert (await get_quota(service))["quotas"]["stability"]["status"] == "healthy"
    source.refused_at = at(30)
    assert (await get_quota(service))["quotas"]["stability"]["status"] == "exceeded"
    assert store.count("stability") == 2 and len(critical_lines(caplog, "stability")) == 2


@pytest.mark.asyncio
async def test_latest_answers_at_once_and_refreshes_in_the_background():
    """latest() returns the views it has without waiting; the refresh it starts makes the next call see a refusal."""
    source = FixedQuotaSource("youtube", 100, 10_000, ResetRule.daily(zone="America/Los_Angeles"))
    service = QuotaService(QuotaStore(), {"youtube": source}, clock=Clock(T0))
    await service.poll("youtube")
    source.refused_at = at(-1)
    assert [v.status for v in service.latest()] == ["healthy"]
    await service._background
    assert [(v.status, v.error_code) for v in service.latest()] == [("exceeded", "YOUTUBE_QUOTA_EXCEEDED")]


# -- balances: re-read when stale, once for concurrent askers, within a bound --------------------------------------
@pytest.fixture
def stability(fakes):
    """The session's fake Stability, its balance and faults put back afterwards."""
    yield fakes
    fakes.reset("stability")


def balance_requests(fakes) -> int:
    return fakes.stats("stability")["requests"].get(BALANCE_PATH, 0)


def balance_source(fakes, clock: Clock, **options) -> BalanceQuotaSource:
    poller = StabilityBalancePoller(
        fakes.base_url("stability"), DEMO_SECRETS["stability_api_key"], baseline=100, clock=clock
    )
    return BalanceQuotaSource(poller, ResetRule.never(), **options)


@pytest.mark.parametrize("age, rereads", [(0, 0), (299, 0), (300, 1), (3600, 1)])
@pytest.mark.asyncio
async def test_stale_balance_is_reread_on_demand(stability, age, rereads):
    """An answer re-reads the balance only once it is ``stale_after`` old, and then shows what the provider holds."""
    clock = Clock(T0)
    source = balance_source(stability, clock, stale_after=300)
    first = await source.read(clock(), refresh=False)
    stability.stability_account.try_charge(10)  # 2 credits spent since
    before = balance_requests(stability)
    clock.now += dt.timedelta(seconds=age)
    reading = await source.read(clock(), refresh=False)
    await source.poller.aclose()
    assert balance_requests(stability) - before == rereads
    expected = first.used + 2 if rereads else first.used
    assert reading.used == pytest.approx(expected) and reading.stale is False


@pytest.mark.asyncio
async def test_concurrent_askers_share_one_reread(stability):
    """Ten answers asking at once for a stale balance cause one request to the provider."""
    clock = Clock(T0)
    source = balance_source(stability, clock, stale_after=300)
    await source.read(clock())
    stability.set_fault("stability", latencies=[0.3])
    clock.now += dt.timedelta(seconds=301)
    before = balance_requests(stability)
    readings = await asyncio.gather(*(source.read(clock(), refresh=False) for _ in range(10)))
    await source.poller.aclose()
    assert balance_requests(stability) - before == 1
    assert {r.used for r in readings} == {100 - stability.stability_account.credits}


@pytest.mark.asyncio
async def test_slow_reread_answers_the_last_balance_marked_stale(stability):
    """Past ``wait`` the last balance answers, stale; the re-read still lands and serves the next answer."""
    clock = Clock(T0)
    source = balance_source(stability, clock, stale_after=300, wait=0.05)
    first = await source.read(clock())
    stability.stability_account.try_charge(5)
    stability.set_fault("stability", latencies=[1.0])
    clock.now += dt.timedelta(seconds=301)
    before = balance_requests(stability)
    slow = await source.read(clock(), refresh=False)
    assert (slow.used, slow.stale) == (first.used, True)
    await source._inflight
    landed = await source.read(clock(), refresh=False)
    await source.poller.aclose()
    assert (landed.used, landed.stale) == (pytest.approx(first.used + 1), False)
    assert balance_requests(stability) - before == 1


# -- poll cadence ---------------------------------------------------------------------------------------------------
class SimulatedTime:
    """An injected sleep that moves the service's clock instead of waiting; stops the world at ``until``."""

    def __init__(self, clock: Clock, until: dt.datetime, events: dict) -> None:
        self.clock = clock
        self.until = until
        self.events = dict(events)
        self.done = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.clock.now += dt.timedelta(seconds=seconds)
        elapsed = (self.clock.now - T0).total_seconds()
        for moment in [m for m in self.events if m <= elapsed]:
            await self.events.pop(moment)()
        if self.clock.now >= self.until:
            self.done.set()
            await asyncio.Event().wait()  # parked until stop() cancels it
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    "used_after, change_at, expected_polls",
    [
        # below 80 %: hourly
        (50, 600, [0, 3600, 7200]),
        # past 80 % from the poll at 3600 on: every 15 minutes from that poll
        (85, 1800, [0, 3600, 4500, 5400, 6300, 7200]),
        # past 80 % seen by an answer at 600, between polls: the next poll 15 minutes after the last one, not an hour
        ("report", 600, [0, 900, 1800, 2700, 3600, 4500, 5400, 6300, 7200]),
    ],
)
@pytest.mark.asyncio
async def test_quota_past_80_percent_is_polled_every_15_minutes(used_after, change_at, expected_polls):
    """A quota at or past 80 % is polled at least every 15 minutes (hourly otherwise), on an injected clock."""
    clock = Clock(T0)
    source = FixedQuotaSource("d-id", 10, 100, ResetRule.monthly())
    store = QuotaStore()

    async def change() -> None:
        source.used = 85 if used_after == "report" else used_after
        if used_after == "report":
            await service.report("d-id")

    time = SimulatedTime(clock, at(7201), {change_at: change})
    service = QuotaService(store, {"d-id": source}, poll_intervals={"d-id": 3600}, clock=clock, sleep=time.sleep)
    await service.start()
    await asyncio.wait_for(time.done.wait(), 10)
    polls = [(s.timestamp - T0).total_seconds() for s in store.history("d-id")]
    await service.stop()  # closes the in-memory store
    assert polls == expected_polls


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({}, {"stability": 300, "d-id": 300}),
        ({"stale_after_seconds": 60}, {"stability": 60, "d-id": 60}),
        ({"stale_after_seconds": 60, "d_id": {"stale_after_seconds": 900}}, {"stability": 60, "d-id": 900}),
    ],
)
def test_stale_after_is_global_or_per_provider(settings, expected):
    """``stale_after_seconds`` applies to every polled balance unless the provider sets its own."""
    config = QuotaConfig.model_validate({"redis_url": None, "store_url": "sqlite://", **settings})
    service = QuotaService.from_config(config)
    assert {key: service.sources[key].stale_after for key in ("stability", "d-id")} == expected


@pytest.mark.parametrize(
    "settings",
    [
        {"high_usage_poll_interval_seconds": 901},  # past 80 %, never less often than every 15 minutes
        {"stale_after_seconds": 0},
        {"stability": {"stale_after_seconds": -1}},
        {"refresh_wait_seconds": 0},
        {"refresh_interval_seconds": 0},
    ],
)
def test_freshness_settings_are_checked(settings):
    """Freshness settings out of range are config errors, not silent defaults."""
    with pytest.raises(ValidationError):
        QuotaConfig.model_validate(settings)


# -- on real servers -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def servers():
    """Redis, the collector and Prometheus (scraping every second) of this module's own."""
    with private_stack("otel-monitor-quota-fresh-", "redis", "collector", "prometheus") as stack:
        yield stack


@pytest.mark.stack
@pytest.mark.parametrize(
    "service, refused, now, exceeded",
    [
        ("youtube", "2026-03-10T07:30:00Z", "2026-03-10T09:00:00Z", True),  # within today's Pacific window
        ("youtube", "2026-03-10T06:59:00Z", "2026-03-10T09:00:00Z", False),  # before the 07:00Z reset: overtaken
        ("gemini", "2026-03-09T23:59:59Z", "2026-03-10T00:00:00Z", False),  # the UTC reset clears it
        ("gemini", "2026-03-10T00:00:01Z", "2026-03-10T00:05:00Z", True),
    ],
)
@pytest.mark.asyncio
async def test_counted_quota_refused_until_its_window_resets(servers, service, refused, now, exceeded):
    """A refusal the backend recorded in Redis makes a counted quota exceeded until the window's reset."""
    client = redis.Redis.from_url(servers.redis_url)
    prefix = f"test:{uuid.uuid4().hex}"
    backend = UsageCounter(client, prefix=prefix)  # as in the backend: through the background writer
    backend.record(service, 3, at=dt.datetime.fromisoformat(now.replace("Z", "+00:00")))
    backend.record_refusal(service, at=dt.datetime.fromisoformat(refused.replace("Z", "+00:00")))
    backend.record_refusal(service, at=dt.datetime(2026, 1, 1, tzinfo=UTC))  # a late, older write loses
    backend.flush()
    monitor = UsageCounter(client, prefix=prefix, background=False)
    total = QuotaConfig().provider(service).total
    reading = await CounterQuotaSource(service, monitor, total, QuotaConfig().reset_rules()[service], "units").read(
        dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    )
    client.close()
    assert (reading.used, reading.refused_at is not None) == ((total if exceeded else 3), exceeded)


@pytest.mark.stack
@pytest.mark.asyncio
async def test_provider_out_of_credits_mid_run(servers, tmp_path, caplog):
    """Stability runs out of credits mid-run: the backend's calls get 402, the next quota answer says exceeded
    without asking the provider, the check is logged and stored, and the shipped StabilityQuotaLow rule fires."""
    caplog.set_level(logging.INFO, logger="otel_monitor")
    prefix = f"test:{uuid.uuid4().hex}"
    job = f"quota-freshness-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    fakes = FakeProviders(**fake_provider_credentials(), stability_credits=2.0, stability_cost_per_image=0.2)
    fakes.start()
    backend_redis = redis.Redis.from_url(servers.redis_url)
    usage = UsageCounter(backend_redis, prefix=prefix)
    recorder = ExternalCallRecorder(TracerProvider(), MeterProvider(), LocalFailureStreaks(), usage=usage)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{servers.otlp_http_endpoint}/v1/metrics"), export_interval_millis=500
    )
    meter_provider = MeterProvider(resource=Resource.create({"service.name": job}), metric_readers=[reader])
    config = QuotaConfig.model_validate(
        {
            "stability": {
                "api_key": DEMO_SECRETS["stability_api_key"],
                "base_url": fakes.base_url("stability"),
                "baseline": 2.0,
            },
            "store_url": f"sqlite:///{tmp_path / 'quota.db'}",
            "redis_url": servers.redis_url,
            "usage_prefix": prefix,
        }
    )
    quota = QuotaService.from_config(config, meter_provider=meter_provider)
    rules = [r for r in load_rules(SHIPPED_RULES, promtool=None) if r.name == "StabilityQuotaLow"]
    fired = []
    source = PrometheusSource(servers.prometheus_url, timeout=5.0)
    evaluator = Evaluator(
        rules, {"promql": source}, interval=lambda rule: 0.1
    )  # each pass evaluates it, until the gauge has arrived
    statuses = []
    try:
        await quota.start()  # polls every provider once: Stability 0 of 2 credits used
        before = (await get_quota(quota, service="stability"))["quotas"]["stability"]
        assert (before["used"], before["status"]) == (0, "healthy"), str(before)

        outcomes = []
        async with httpx.AsyncClient(base_url=fakes.base_url("stability"), timeout=10) as client:
            for _ in range(4):  # 5 images at 0.2 credits: 1 credit a call, 2 credits in all
                try:
                    with recorder.track("stability", "text-to-image") as call:
                        response = await client.post(
                            "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image",
                            headers={"Authorization": f"Bearer {DEMO_SECRETS['stability_api_key']}"},
                            json={"text_prompts": [{"text": "otters"}], "samples": 5},
                        )
                        response.raise_for_status()
                except httpx.HTTPStatusError:
                    pass
                outcomes.append((response.status_code, call.classification.error_code("stability")))
        assert outcomes == [
            (200, None),
            (200, None),
            (402, "STABILITY_QUOTA_EXCEEDED"),
            (402, "STABILITY_QUOTA_EXCEEDED"),
        ]
        usage.flush()

        balance_reads = balance_requests(fakes)
        after = (await get_quota(quota, service="stability"))["quotas"]["stability"]
        assert (after["used"], after["total"], after["percentage"], after["status"], after["error_code"]) == (
            2,
            2,
            100,
            "exceeded",
            "STABILITY_QUOTA_EXCEEDED",
        )
        assert after["refused_at"] is not None
        assert balance_requests(fakes) == balance_reads  # the refusal was the evidence, no re-read
        assert [s.percentage for s in quota.store.history("stability")][-1] == 100
        assert len(critical_lines(caplog, "stability")) == 1

        async def evaluate_until_fired() -> None:
            while not fired:
                meter_provider.force_flush()
                statuses.append(
                    prom_values(
                        servers.prometheus_url, f'quota_usage_ratio{{job="{job}", service="stability"}}', ("service",)
                    )
                )
                fired.extend((c.alert, c.transition) for c in await evaluator.evaluate_once() if c.announced)
                await asyncio.sleep(0.5)

        await asyncio.wait_for(evaluate_until_fired(), 60)
    finally:
        await quota.stop()
        await source.aclose()
        meter_provider.shutdown()
        backend_redis.close()
        fakes.stop()
    ((alert, transition),) = fired
    assert (alert.rule, transition, alert.labels["service"], alert.error_code) == (
        "StabilityQuotaLow",
        "firing",
        "stability",
        "STABILITY_QUOTA_EXCEEDED",
    )
    assert statuses[-1] == {("stability",): 1.0}

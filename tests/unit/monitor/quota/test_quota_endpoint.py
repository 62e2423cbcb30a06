"""GET /api/v1/system/quota: the required shape and example values, filters, history, and 422 JSON for bad params."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from fastapi import FastAPI

from otel_monitor.monitor.quota.config import QuotaConfig
from otel_monitor.monitor.quota.router import build_quota_router
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.quota.store import QuotaStore
from otel_monitor.monitor.quota.testing import FixedQuotaSource

# The documented example (docs/requirements.md, Endpoints), at its timestamp.
SPEC_NOW = dt.datetime(2025, 10, 20, 10, 30, 15, 123000, tzinfo=dt.UTC)
SPEC_EXAMPLE = {
    "timestamp": "2025-10-20T10:30:15.123Z",
    "quotas": {
        "gemini": {
            "used": 450,
            "total": 1000,
            "percentage": 45,
            "reset_date": "2025-10-21T00:00:00Z",
            "status": "healthy",
        },
        "stability": {"used": 680, "total": 1000, "percentage": 68, "status": "healthy"},
        "d_id": {"used": 85, "total": 100, "percentage": 85, "reset_date": "2025-11-01T00:00:00Z", "status": "warning"},
        "youtube": {
            "used": 8500,
            "total": 10000,
            "percentage": 85,
            "reset_date": "2025-10-21T08:00:00Z",
            "status": "warning",
        },
    },
}
RULES = QuotaConfig().reset_rules()


def spec_service(clock=lambda: SPEC_NOW, **sources) -> QuotaService:
    values = {"gemini": (450, 1000), "stability": (680, 1000), "d-id": (85, 100), "youtube": (8500, 10000)}
    built = {key: FixedQuotaSource(key, used, total, RULES[key]) for key, (used, total) in values.items()}
    built.update(sources)
    return QuotaService(QuotaStore(), built, clock=clock)


async def get(quota: QuotaService, **params) -> httpx.Response:
    app = FastAPI()
    app.include_router(build_quota_router(quota))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://quota") as client:
        return await client.get("/api/v1/system/quota", params=params)


@pytest.mark.asyncio
async def test_spec_example():
    """The spec example's keys, types (d_id) and values; YouTube resets 07:00Z in PDT, not the example's 08:00Z."""
    response = await get(spec_service())
    assert response.status_code == 200
    body = response.json()
    assert body["timestamp"] == SPEC_EXAMPLE["timestamp"]
    assert list(body["quotas"]) == ["gemini", "stability", "d_id", "youtube"]
    for key, expected in SPEC_EXAMPLE["quotas"].items():
        entry = body["quotas"][key]
        assert {"used", "total", "percentage", "reset_date", "status"} <= set(entry)
        for field, value in expected.items():
            if (key, field) == ("youtube", "reset_date"):
                assert entry[field] == "2025-10-21T07:00:00Z"
            else:
                assert entry[field] == value and type(entry[field]) is type(value), (key, field)
    assert body["quotas"]["stability"]["reset_date"] is None
    for entry in body["quotas"].values():
        assert set(entry) == {
            "used",
            "total",
            "percentage",
            "reset_date",
            "status",
            "unit",
            "forecast_exhausted_at",
            "stale",
            "error_code",
            "refused_at",
        }


@pytest.mark.parametrize(
    "used, total, percentage, status",
    [
        (799, 1000, 79.9, "healthy"),
        (800, 1000, 80, "warning"),
        (899, 1000, 89.9, "warning"),
        (900, 1000, 90, "critical"),
        (999, 1000, 99.9, "critical"),
        (1000, 1000, 100, "exceeded"),
        (1200, 1000, 120, "exceeded"),
        (None, 1000, None, "unknown"),
    ],
)
@pytest.mark.asyncio
async def test_status_in_the_response(used, total, percentage, status):
    """The status column follows the share used; a source with no reading is ``unknown`` with nulls."""
    service = spec_service(gemini=FixedQuotaSource("gemini", used, total, RULES["gemini"]))
    entry = (await get(service, service="gemini")).json()["quotas"]["gemini"]
    assert (entry["used"], entry["percentage"], entry["status"]) == (used, percentage, status)


@pytest.mark.parametrize("param", ["d_id", "d-id"])
@pytest.mark.asyncio
async def test_one_service(param):
    """``service=`` takes the service key or its JSON spelling and answers only that provider."""
    body = (await get(spec_service(), service=param)).json()
    assert list(body["quotas"]) == ["d_id"]


@pytest.mark.asyncio
async def test_history_and_forecast():
    """``history_hours=`` adds the stored checks of those hours; the forecast extrapolates them."""
    now = [SPEC_NOW - dt.timedelta(hours=2)]
    source = FixedQuotaSource("gemini", 100, 1000, RULES["gemini"])
    service = spec_service(clock=lambda: now[0], gemini=source)
    for used in (100, 200, 300):
        source.used = used
        await service.poll("gemini")
        now[0] += dt.timedelta(hours=1)
    source.used = 400
    body = (await get(service, service="gemini", history_hours=3)).json()
    entry = body["quotas"]["gemini"]
    assert [(h["timestamp"], h["used"], h["percentage"]) for h in entry["history"]] == [
        ("2025-10-20T08:30:15Z", 100, 10),
        ("2025-10-20T09:30:15Z", 200, 20),
        ("2025-10-20T10:30:15Z", 300, 30),
    ]
    # 100 an hour, 600 left: six hours after 11:30:15
    assert entry["forecast_exhausted_at"] == "2025-10-20T17:30:15Z"


@pytest.mark.parametrize(
    "params, field",
    [
        ({"service": "openai"}, "service"),
        ({"service": ""}, "service"),
        ({"history_hours": 0}, "history_hours"),
        ({"history_hours": 721}, "history_hours"),
        ({"history_hours": -3}, "history_hours"),
        ({"history_hours": "a day"}, "history_hours"),
    ],
)
@pytest.mark.asyncio
async def test_bad_parameters(params, field):
    """A bad query value gets 422 with a JSON body naming the parameter."""
    response = await get(spec_service(), **params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert any(error["loc"] == ["query", field] for error in response.json()["detail"])


@pytest.mark.asyncio
async def test_stale_source_is_reported():
    """A source whose read failed shows its last value with ``stale`` and the error code."""
    service = spec_service(
        **{"d-id": FixedQuotaSource("d-id", 85, 100, RULES["d-id"], stale=True, error_code="D_ID_INVALID_API_KEY")}
    )
    entry = (await get(service, service="d-id")).json()["quotas"]["d_id"]
    assert (entry["used"], entry["stale"], entry["error_code"]) == (85, True, "D_ID_INVALID_API_KEY")

"""The daily summary's spend: per provider and per completed project, in its report and its one-line summary."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from otel_monitor.instrument.costs import CompletedProject, ProjectCosts
from otel_monitor.instrument.redis_client import telemetry_redis
from otel_monitor.monitor.alerting.delivery.daily_summary import (
    DailySummary,
    DailySummaryConfig,
    spend,
    summary_notification,
)
from tools.devstack import free_port

NOON = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
TRACE = "ab" * 16


def project(project_id: str, cost: float, minutes: int = 0, trace_id: str | None = TRACE) -> CompletedProject:
    return CompletedProject(project_id, cost, "success", trace_id, NOON + dt.timedelta(minutes=minutes))


def dearest(project_id: str, cost: float, minutes: int = 0, jaeger_url: str | None = None) -> dict:
    return {
        "project_id": project_id,
        "cost_usd": cost,
        "outcome": "success",
        "trace_id": TRACE,
        "jaeger_url": jaeger_url,
        "completed_at": (NOON + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
    }


@pytest.mark.parametrize(
    ("projects", "jaeger_url", "expected"),
    [
        pytest.param(None, None, None, id="unknown-projects"),
        pytest.param(
            [],
            None,
            {"count": 0, "total_usd": 0, "average_usd": None, "p90_usd": None, "most_expensive": None},
            id="no-project-today",
        ),
        pytest.param(
            [project("p1", 2.5)],
            None,
            {"count": 1, "total_usd": 2.5, "average_usd": 2.5, "p90_usd": 2.5, "most_expensive": dearest("p1", 2.5)},
            id="one-project-is-its-own-p90",
        ),
        pytest.param(
            [project(f"p{n}", float(n), n) for n in range(1, 11)],
            "http://jaeger:16686/",
            {
                "count": 10,
                "total_usd": 55,
                "average_usd": 5.5,
                "p90_usd": 9.1,
                "most_expensive": dearest("p10", 10, 10, f"http://jaeger:16686/trace/{TRACE}"),
            },
            id="ten-projects-interpolated-p90-with-jaeger-link",
        ),
        pytest.param(
            [project("early", 3.0, 1), project("late", 3.0, 2), project("cheap", 0.000125, 3)],
            None,
            {
                "count": 3,
                "total_usd": 6.000125,
                "average_usd": 2.000042,
                "p90_usd": 3,
                "most_expensive": dearest("late", 3, 2),
            },
            id="a-tie-names-the-latest-and-fractions-of-a-cent-stay",
        ),
    ],
)
def test_project_spend(projects, jaeger_url, expected):
    """Count, total, average, P90 and the most expensive project (its trace and link) of the completed projects."""
    assert spend([], projects, jaeger_url)["projects"] == expected


def test_provider_spend_sums_series_of_one_provider():
    """Per provider: the sum of its series (instances, models); the total is every provider's."""
    series = [({"service": "gemini"}, 1.25), ({"service": "gemini"}, 0.5), ({"service": "d-id"}, 5.0)]
    assert spend(series, None) == {
        "currency": "USD",
        "total_usd": 6.75,
        "providers": {"d-id": 5, "gemini": 1.75},
        "projects": None,
    }


@pytest.mark.parametrize(
    ("spent", "says"),
    [
        pytest.param(None, "Daily Summary 2026-03-01: 4 projects, 75% successful", id="no-spend-known"),
        pytest.param(
            spend([({"service": "gemini"}, 7.5)], [project("p1", 4.0), project("p2", 3.5)]),
            f"Daily Summary 2026-03-01: 4 projects, 75% successful, 7.5 USD spent (most expensive project p1: 4 USD,"
            f" trace {TRACE})",
            id="spend-and-most-expensive",
        ),
        pytest.param(
            spend([({"service": "gemini"}, 7.5)], None),
            "Daily Summary 2026-03-01: 4 projects, 75% successful, 7.5 USD spent",
            id="projects-unknown",
        ),
    ],
)
def test_summary_line_names_the_spend(spent, says):
    """The one-line summary every channel shows (chat, console) names the day's spend and its dearest project."""
    statistics = {"total_projects": 4, "success_rate": 75, **({"spend": spent} if spent else {})}
    line = {"date": "2026-03-01", "statistics": statistics}
    assert summary_notification(line).alert.summary == says


def empty_prometheus(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})


@pytest.mark.asyncio
async def test_redis_away_leaves_project_spend_unknown_not_zero(tmp_path):
    """When the backend's Redis does not answer, the summary is still made: project spend unknown (None), not 0."""
    reader = ProjectCosts(telemetry_redis(f"redis://127.0.0.1:{free_port()}/0"))

    async def completed(start: dt.datetime, end: dt.datetime) -> list[CompletedProject]:
        return reader.completed_between(start, end)

    async with httpx.AsyncClient(transport=httpx.MockTransport(empty_prometheus)) as client:
        summary = DailySummary(
            DailySummaryConfig(reports_dir=tmp_path),
            completed_projects=completed,
            client=client,
            clock=lambda: NOON,
        )
        line = await summary.build(NOON.date())
    assert line["statistics"]["spend"] == {"currency": "USD", "total_usd": 0, "providers": {}, "projects": None}

"""Acceptance: a demo project's cost equals its calls priced by the configured table, in Prometheus, its log line
and the daily summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid

import pytest
import redis

from examples.demo_backend.config import DemoSettings
from examples.demo_backend.providers import SCRIPT_MODEL
from otel_monitor.instrument.costs import ProjectCosts
from otel_monitor.instrument.metrics import PromNames
from otel_monitor.monitor.alerting.delivery.daily_summary import DailySummary, DailySummaryConfig, summary_notification
from tests.support.backends import wait_for_prom
from tests.support.demo import create_project, demo_backend, gemini_tokens, wait_finished

pytestmark = pytest.mark.stack

# Prices whose products are whole dollars, so every sum is exact in floating point (Prometheus, Redis, the log).
PRICES = {
    "gemini": {SCRIPT_MODEL: {"input_per_million_tokens": 1_000_000, "output_per_million_tokens": 3_000_000}},
    "stability": {"*": {"per_credit": 0.5, "credits_per_image": 4}},  # 2 USD an image
    "d-id": {"talks.create": {"per_credit": 0.25, "credits_per_call": 20}},  # 5 USD a talk
    "youtube": {"*": {}},
}
TOPICS = ("otters", "a very long documentary about the migration of arctic terns")


@pytest.fixture
def demo(stack, fakes, workdir):
    """The demo API and worker pricing calls by ``PRICES``; the Redis of completed projects starts empty (earlier
    tests' demo projects completed today too)."""
    client = redis.Redis.from_url(stack.redis_url)
    for key in client.scan_iter("otel_monitor:projects_completed:*"):
        client.delete(key)
    client.close()
    backend = demo_backend(stack, fakes, workdir, "cost", extra_env={"OTEL_MONITOR_PRICES": json.dumps(PRICES)})
    backend.start()
    yield backend
    backend.stop()


def test_project_cost_is_the_sum_of_its_calls_priced_by_the_table(demo, stack, fakes, workdir):
    """Two full projects (Gemini, 5 Stability images, a D-ID talk, a YouTube upload): the counter by service and
    model, the project cost histogram, each project's finished log line and the daily summary's spend per provider
    and per project (the most expensive one with the trace of its log line) equal the table's prices of the
    calls."""
    images = DemoSettings().images_per_project
    expected_project = {}
    for topic in TOPICS:
        input_tokens, output_tokens = gemini_tokens(fakes, topic)
        expected_project[topic] = input_tokens * 1.0 + output_tokens * 3.0 + images * 2.0 + 5.0
    assert expected_project[TOPICS[0]] != expected_project[TOPICS[1]]
    accepted = {topic: create_project(demo, ["gemini", "stability", "d-id", "youtube"], topic) for topic in TOPICS}
    finished = wait_finished(demo, {a["project_id"] for a in accepted.values()})

    assert {topic: finished[accepted[topic]["project_id"]]["cost_usd"] for topic in TOPICS} == expected_project
    job = f'job="{demo.worker_service}"'
    by_call = {
        ("gemini", SCRIPT_MODEL): sum(expected_project.values()) - len(TOPICS) * (images * 2.0 + 5.0),
        ("stability", "text-to-image"): len(TOPICS) * images * 2.0,
        ("d-id", "talks.create"): len(TOPICS) * 5.0,
        ("youtube", "videos.insert"): 0.0,
    }
    query = f"sum by (service, model) ({PromNames.COST}{{{job}}})"
    assert wait_for_prom(stack.prometheus_url, query, ("service", "model"), by_call) == by_call
    projects = {("success",): sum(expected_project.values())}
    query = f"sum by (outcome) ({PromNames.PROJECT_COST}_sum{{{job}}})"
    assert wait_for_prom(stack.prometheus_url, query, ("outcome",), projects) == projects
    counted = {("success",): float(len(TOPICS))}
    query = f"sum by (outcome) ({PromNames.PROJECT_COST}_count{{{job}}})"
    assert wait_for_prom(stack.prometheus_url, query, ("outcome",), counted) == counted

    spend = asyncio.run(daily_spend(stack, job, workdir, by_service(by_call), len(TOPICS)))
    assert spend["providers"] == by_service(by_call)
    assert spend["total_usd"] == sum(by_call.values())
    cheaper, dearer = sorted(expected_project.values())
    projects = spend["projects"]
    assert (projects["count"], projects["total_usd"]) == (len(TOPICS), cheaper + dearer)
    assert projects["average_usd"] == (cheaper + dearer) / 2
    assert projects["p90_usd"] == pytest.approx(cheaper + 0.9 * (dearer - cheaper), abs=1e-6)
    dearest_topic = max(TOPICS, key=expected_project.__getitem__)
    dearest_line = finished[accepted[dearest_topic]["project_id"]]
    assert dearest_line["trace_id"]
    assert projects["most_expensive"] == {
        "project_id": accepted[dearest_topic]["project_id"],
        "cost_usd": dearer,
        "outcome": "success",
        "trace_id": dearest_line["trace_id"],
        "jaeger_url": f"{stack.jaeger_url}/trace/{dearest_line['trace_id']}",
        "completed_at": projects["most_expensive"]["completed_at"],
    }


def by_service(by_call: dict[tuple[str, str], float]) -> dict[str, float]:
    """The spend per provider of spend per (provider, model)."""
    totals: dict[str, float] = {}
    for (service, _), usd in by_call.items():
        totals[service] = totals.get(service, 0.0) + usd
    return totals


async def daily_spend(stack, job: str, workdir, providers: dict[str, float], projects: int) -> dict:
    """Today's daily summary spend, once Prometheus has every provider's cost and Redis every project; the summary's
    one-line text (what chat channels show) names the total and the most expensive project."""
    reader = ProjectCosts(redis.Redis.from_url(stack.redis_url))
    summary = DailySummary(
        DailySummaryConfig(prometheus_url=stack.prometheus_url, matchers=job, reports_dir=workdir / "reports"),
        completed_projects=lambda start, end: asyncio.to_thread(reader.completed_between, start, end),
        jaeger_url=stack.jaeger_url,
    )
    today = dt.datetime.now(dt.UTC).date()
    line: dict = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the last exports reach Prometheus within a few scrapes
        line = await summary.build(today)
        spend = line["statistics"]["spend"]
        if spend["providers"] == providers and spend["projects"]["count"] == projects:
            break
        await asyncio.sleep(1)
    spend = line["statistics"]["spend"]
    dearest = spend["projects"]["most_expensive"]
    assert f"{spend['total_usd']} USD spent" in summary_notification(line).alert.summary
    assert dearest["trace_id"] in summary_notification(line).alert.summary
    return spend


def test_project_cost_sums_the_calls_of_every_process_in_redis(stack):
    """Two recorders' ProjectCosts (two worker processes, each its own writer) add to one project in Redis; its
    completion reads the sum once, and a project no one priced reads 0."""
    client = redis.Redis.from_url(stack.redis_url)
    prefix = f"test_cost:{uuid.uuid4().hex}"
    first, second = (ProjectCosts(client, prefix=prefix) for _ in range(2))
    for costs, amounts in ((first, (0.25, 1.5)), (second, (2.0,))):
        for amount in amounts:
            costs.add("p1", amount)
    second.flush()
    assert 0 < client.ttl(f"{prefix}:p1") <= 7 * 86400
    assert first.take("p1") == 3.75
    assert second.take("p1") == 0.0


def test_completed_projects_are_read_back_by_time_across_utc_days(stack):
    """Projects kept by two recorders land in their UTC day's sorted set; a local day (Paris) spanning two UTC days
    reads those completed in [start, end) of both, end excluded, with cost, outcome and trace."""
    client = redis.Redis.from_url(stack.redis_url)
    prefix = f"test_completed:{uuid.uuid4().hex}"
    moments = iter(
        [
            dt.datetime(2026, 2, 28, 22, 59, tzinfo=dt.UTC),  # 23:59 in Paris: the day before
            dt.datetime(2026, 2, 28, 23, 0, tzinfo=dt.UTC),  # 00:00 in Paris: the day's first moment
            dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC),
            dt.datetime(2026, 3, 1, 23, 0, tzinfo=dt.UTC),  # 00:00 in Paris the next day: excluded
        ]
    )
    first, second = (ProjectCosts(client, completed_prefix=prefix, clock=lambda: next(moments)) for _ in range(2))
    first.completed("before", 1.0, "success", None)
    second.completed("midnight", 2.5, "failure", "ab" * 16)
    first.completed("noon", 4.0, "success", "cd" * 16)
    second.completed("next-day", 8.0, "success", None)
    first.flush()
    second.flush()
    assert 0 < client.ttl(f"{prefix}:2026-03-01") <= 40 * 86400
    paris_day = (dt.datetime(2026, 2, 28, 23, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, 23, tzinfo=dt.UTC))
    read = ProjectCosts(client, completed_prefix=prefix).completed_between(*paris_day)
    assert [(p.project_id, p.cost_usd, p.outcome, p.trace_id, p.completed_at) for p in read] == [
        ("midnight", 2.5, "failure", "ab" * 16, paris_day[0]),
        ("noon", 4.0, "success", "cd" * 16, dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)),
    ]

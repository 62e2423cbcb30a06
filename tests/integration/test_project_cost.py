"""Acceptance: a demo project's cost equals its calls priced by the configured table, in Prometheus and its log."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import redis

from examples.demo_backend.config import DemoSettings
from examples.demo_backend.launcher import DEMO_SECRETS
from examples.demo_backend.providers import SCRIPT_MODEL, script_request
from otel_monitor.instrument.costs import ProjectCosts
from otel_monitor.instrument.metrics import PromNames
from tests.support.backends import wait_for_prom
from tests.support.demo import create_project, demo_backend, wait_finished

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
    """The demo API and worker pricing calls by ``PRICES``."""
    backend = demo_backend(stack, fakes, workdir, "cost", extra_env={"OTEL_MONITOR_PRICES": json.dumps(PRICES)})
    backend.start()
    yield backend
    backend.stop()


def gemini_tokens(fakes, topic: str) -> tuple[int, int]:
    """(input, output) tokens the fake Gemini answers for the script of ``topic`` (it counts deterministically)."""
    usage = httpx.post(
        f"{fakes.base_url('gemini')}/v1beta/models/{SCRIPT_MODEL}:generateContent",
        headers={"x-goog-api-key": DEMO_SECRETS["gemini_api_key"]},
        json=script_request(topic),
        timeout=10,
    ).json()["usageMetadata"]
    return usage["promptTokenCount"], usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]


def test_project_cost_is_the_sum_of_its_calls_priced_by_the_table(demo, stack, fakes):
    """Two full projects (Gemini, 5 Stability images, a D-ID talk, a YouTube upload): the counter by service and
    model, the project cost histogram and each project's finished log line equal the table's prices of the
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

"""The collector tier end to end: demo backend -> agent -> two tail-sampling gateways -> Jaeger, Prometheus and
VictoriaLogs."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.backends import jaeger_trace, prom_values, victorialogs_lines, wait_for_prom
from tests.support.demo import create_project, demo_backend, wait_finished
from tests.support.stacks import private_stack
from tools.devstack import wait_until
from tools.devstack.tier import CollectorTier

pytestmark = pytest.mark.stack

# 10 % of the traces without failure are kept. Their trace IDs are random, so each is kept independently with
# p = 0.1: P(more than 20 of 40 kept) = sum_{k=21..40} C(40,k) 0.1^k 0.9^(40-k) ~ 2e-11. Spans are spread by trace
# ID over two gateways: P(all 50 traces on one gateway) = 2 * 0.5^50 ~ 2e-15. Both far below 1e-6.
SUCCESSFUL_PROJECTS = 40
MOST_KEPT = SUCCESSFUL_PROJECTS // 2
SAMPLING_PERCENTAGE = 10
# Projects with a failed provider call: (provider, fault, projects, the call's span, its outcome). A refused key
# fails the task (error status on its spans too); a partial failure leaves the task successful, so only the call's
# external_api.outcome tells the gateway to keep the trace.
FAILED_CALLS = [
    ("gemini", "invalid_key", 5, "gemini generateContent", "error"),
    ("stability", "partial", 5, "stability text-to-image", "partial_failure"),
]
# Longer than a demo project's whole chain on a busy machine (the task may wait in the queue), so each trace is
# decided on all its spans; the slow-trace threshold is out of reach so only failures and the 10 % decide here.
DECISION_WAIT_SECONDS = 30
SLOW_TRACE_MS = 600_000
# What every trace of a project holds beside its provider call: the API request and its enqueueing (API process)
# and the task (worker process).
PROJECT_SPANS = {"POST /api/v1/projects", "apply_async/video.generate", "run/video.generate"}
# A second host's agent beside the tier's own (named tier.agent_host_name), routing to the same gateways.
OTHER_HOST = "tier-host-other"
# A host-metrics collection interval (15 s), the batch, the gateway and a scrape (5 s), with room for a busy host.
HOST_METRICS_SCRAPED_WITHIN_SECONDS = 90


@pytest.fixture(scope="module")
def tier_stack():
    """Jaeger, VictoriaLogs, Prometheus and Redis of this module alone: its Prometheus scrapes the tier's gateways."""
    with private_stack("otel-monitor-tier-", "jaeger", "victorialogs", "prometheus", "redis") as stack:
        yield stack


@pytest.fixture(scope="module")
def tier(tier_stack):
    """An agent in front of two gateways keeping 10 % of the traces without failure."""
    with CollectorTier(
        tier_stack,
        gateways=2,
        sampling_percentage=SAMPLING_PERCENTAGE,
        slow_trace_ms=SLOW_TRACE_MS,
        decision_wait=f"{DECISION_WAIT_SECONDS}s",
    ) as running:
        yield running


@pytest.fixture
def demo(tier_stack, tier, fakes, workdir):
    """The demo API and a 2-process Celery worker, their OTLP sent to the tier's agent."""
    backend = demo_backend(
        tier_stack, fakes, workdir, "tier", extra_env={"OTEL_MONITOR_OTLP_ENDPOINT": tier.otlp_http_endpoint}
    )
    backend.start()
    yield backend
    backend.stop()


def _missing_parents(trace: dict) -> set[str]:
    """Span IDs that a span of ``trace`` names as its parent (same trace) but that the trace does not hold."""
    held = {span["spanID"] for span in trace["spans"]}
    return {
        ref["spanID"]
        for span in trace["spans"]
        for ref in span.get("references", [])
        if ref["traceID"] == trace["traceID"] and ref["spanID"] not in held
    }


def _complete(stack, trace_id: str, services: set[str], call_span: str) -> dict | None:
    """The trace from Jaeger when it holds every span of a project: both processes, each expected operation and
    every parent a span names."""
    trace = jaeger_trace(stack.jaeger_url, trace_id)
    if not trace:
        return None
    operations = {span["operationName"] for span in trace["spans"]}
    held_services = {trace["processes"][span["processID"]]["serviceName"] for span in trace["spans"]}
    if PROJECT_SPANS | {call_span} <= operations and held_services == services and not _missing_parents(trace):
        return trace
    return None


def test_failed_provider_calls_keep_whole_traces_and_span_metrics_count_every_call(demo, tier_stack, tier, fakes):
    """With 90 % of successful traces sampled out, every trace with a failed provider call is complete in Jaeger,
    most successful ones are not stored, and the span metrics summed over both gateways count every call."""
    fakes.set_fault("gemini", mode="ok", latencies=[0])
    succeeded = {create_project(demo, ["gemini"])["project_id"] for _ in range(SUCCESSFUL_PROJECTS)}
    successes = wait_finished(demo, succeeded, timeout=180)
    last_success_decided_by = time.monotonic() + DECISION_WAIT_SECONDS + 15  # its decision, then the batch export
    calls = {("gemini", "success"): float(SUCCESSFUL_PROJECTS)}
    failed: dict[str, tuple[str, str]] = {}  # project id -> (call span, outcome)
    for provider, fault, projects, call_span, outcome in FAILED_CALLS:
        fakes.set_fault(provider, mode=fault, latencies=[0])
        ids = {create_project(demo, [provider])["project_id"] for _ in range(projects)}
        wait_finished(demo, ids, timeout=180)
        fakes.set_fault(provider, mode="ok")
        failed.update(dict.fromkeys(ids, (call_span, outcome)))
        calls[(provider, outcome)] = float(projects)
    finished = wait_finished(demo, set(failed))

    services = {demo.api_service, demo.worker_service}
    failed_traces = set()
    for project_id, (call_span, outcome) in failed.items():
        trace_id = finished[project_id]["trace_id"]
        failed_traces.add(trace_id)
        trace = wait_until(
            lambda trace_id=trace_id, call_span=call_span: _complete(tier_stack, trace_id, services, call_span),
            DECISION_WAIT_SECONDS + 60,
            interval=1,
            what=f"trace {trace_id} with a failed {call_span} complete in Jaeger",
        )
        call = next(span for span in trace["spans"] if span["operationName"] == call_span)
        assert {tag["key"]: tag["value"] for tag in call["tags"]}["external_api.outcome"] == outcome

    # Provider calls by outcome, summed over the gateways, equal the calls made; each gateway counted some.
    selector = f'traces_span_metrics_calls_total{{service_name="{demo.worker_service}", external_api_outcome!=""}}'
    by = ("external_api_service", "external_api_outcome")
    query = f"sum by ({', '.join(by)}) ({selector})"
    assert wait_for_prom(tier_stack.prometheus_url, query, by, calls) == calls
    by_gateway = prom_values(tier_stack.prometheus_url, f"sum by (gateway) ({selector})", ("gateway",))
    assert set(by_gateway) == {(name,) for name in tier.gateway_names}

    # Every successful trace has been decided by now: count those Jaeger stored.
    wait_until(lambda: time.monotonic() > last_success_decided_by, DECISION_WAIT_SECONDS + 30, interval=1)
    response = httpx.get(
        f"{tier_stack.jaeger_url}/api/traces", params={"service": demo.api_service, "limit": 1000}, timeout=30
    )
    stored = {trace["traceID"] for trace in response.json()["data"]}
    success_traces = {line["trace_id"] for line in successes.values()}
    assert failed_traces <= stored
    assert len(stored & success_traces) <= MOST_KEPT, f"{len(stored & success_traces)} of {SUCCESSFUL_PROJECTS} kept"


def test_failing_call_log_lines_reach_victorialogs_through_the_tier(demo, tier_stack, fakes):
    """A project whose Gemini call fails (invalid key), its log records sent to the agent: VictoriaLogs returns, for
    its trace_id, the lines of both the API and the worker, the failing call's error line among them."""
    fakes.set_fault("gemini", mode="invalid_key", latencies=[0])
    try:
        accepted = create_project(demo, ["gemini"])
        wait_finished(demo, {accepted["project_id"]})
    finally:
        fakes.set_fault("gemini", mode="ok")
    trace_id = accepted["trace_id"]

    def error_line_stored() -> list[dict] | None:
        found = victorialogs_lines(tier_stack.victorialogs_url, trace_id)
        services = {line["service.name"] for line in found}
        failing = [line for line in found if line.get("error_code") == "GEMINI_INVALID_API_KEY"]
        return found if failing and services == {demo.api_service, demo.worker_service} else None

    stored = wait_until(error_line_stored, 60, interval=0.5, what="the failing call's log lines in VictoriaLogs")
    assert {line["trace_id"] for line in stored} == {trace_id}


def test_each_agents_host_metrics_carry_its_configured_host_name(tier_stack, tier):
    """Two agents, named by AGENT_HOST_NAME, in front of the same gateways: Prometheus holds each host's system
    metrics apart, under its name as `instance`, and target_info gives that instance its `host_name`."""
    hosts = sorted({tier.agent_host_name, OTHER_HOST})
    selector = f'{{instance=~"{"|".join(hosts)}"}}'
    other = tier.agent(OTHER_HOST).start()
    try:
        by_instance = wait_for_prom(
            tier_stack.prometheus_url,
            f"group by (instance) (system_memory_utilization_ratio{selector})",
            ("instance",),
            {(host,): 1.0 for host in hosts},
            timeout=HOST_METRICS_SCRAPED_WITHIN_SECONDS,
        )
        assert by_instance == {(host,): 1.0 for host in hosts}
        host_names = prom_values(
            tier_stack.prometheus_url,
            f"group by (instance, host_name) (target_info{selector})",
            ("instance", "host_name"),
        )
        assert host_names == {(host, host): 1.0 for host in hosts}
    finally:
        other.stop()

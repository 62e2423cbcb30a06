"""The telemetry pipeline end to end: demo backend -> collector -> Jaeger and Prometheus, all real processes."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math

import httpx
import pytest
import redis

from examples.demo_backend.launcher import DEMO_SECRETS
from examples.demo_backend.providers import SCRIPT_MODEL
from examples.monitor_launcher import MonitorProcess
from otel_monitor.instrument.business_metrics import ActiveUsers
from otel_monitor.instrument.failure_streaks import RedisFailureStreaks, Streak
from otel_monitor.instrument.metrics import CALL_DURATION_BUCKETS, PromNames
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.instrument.usage_counter import UsageCounter
from tests.support.backends import blackhole_server, jaeger_trace, prom_values, read_log_lines, span_tags, wait_for_prom
from tests.support.demo import create_project, demo_backend, gemini_tokens, wait_finished
from tools.devstack import wait_until

pytestmark = pytest.mark.stack

_prefixes = itertools.count()


@pytest.fixture
def demo(stack, fakes, workdir, request):
    """The demo API and a 2-process Celery worker, reporting as a service name of this test's own."""
    options = getattr(request, "param", {})
    env = dict(options.get("env") or {})
    hole = None
    if any("{blackhole}" in v for v in env.values()):
        hole = blackhole_server()
        env = {k: v.format(blackhole=hole.getsockname()[1]) for k, v in env.items()}
    backend = demo_backend(stack, fakes, workdir, f"e2e{next(_prefixes)}-{request.node.name[:20]}", extra_env=env)
    backend.start()
    yield backend
    backend.stop()
    if hole is not None:
        hole.close()


def test_one_trace_spans_request_task_and_provider_calls(demo, stack):
    """A request whose Celery task calls two providers is ONE trace in Jaeger, found by the trace_id in app.log."""
    accepted = create_project(demo, ["gemini", "stability"])
    finished = wait_finished(demo, {accepted["project_id"]})[accepted["project_id"]]
    trace_id = finished["trace_id"]
    assert len(trace_id) == 32 and trace_id == accepted["trace_id"]
    created = [
        line
        for line in read_log_lines(demo.log_dir)
        if line["message"] == "Video project created" and line.get("project_id") == accepted["project_id"]
    ]
    assert [line["trace_id"] for line in created] == [trace_id]  # the API process logged the same trace

    wanted = {"POST /api/v1/projects", "run/video.generate", "gemini generateContent", "stability text-to-image"}

    def complete_trace():
        found = jaeger_trace(stack.jaeger_url, trace_id)
        return found if found and wanted <= {s["operationName"] for s in found["spans"]} else None

    found = wait_until(complete_trace, 30, interval=0.5, what="the whole trace in Jaeger")
    assert {s["traceID"] for s in found["spans"]} == {trace_id}
    services = {found["processes"][s["processID"]]["serviceName"] for s in found["spans"]}
    assert services == {demo.api_service, demo.worker_service}
    by_name = {s["operationName"]: s for s in found["spans"]}
    for provider, name in (("gemini", "gemini generateContent"), ("stability", "stability text-to-image")):
        tags = span_tags(by_name[name])
        assert tags["external_api.service"] == provider
        assert tags["external_api.outcome"] == "success"
        assert tags["span.kind"] == "client"


def test_demo_projects_tokens_equal_what_the_fake_gemini_answered(demo, stack, fakes):
    """The tokens of a demo project's Gemini call, in Prometheus's gen_ai token histogram and on its span in Jaeger,
    equal those the fake answers to the same request (the fake counts deterministically)."""
    topics = ("otters", "a very long documentary about the migration of arctic terns")
    answered = {topic: gemini_tokens(fakes, topic) for topic in topics}
    assert answered[topics[0]] != answered[topics[1]]
    accepted = {topic: create_project(demo, ["gemini"], topic=topic) for topic in topics}
    finished = wait_finished(demo, {a["project_id"] for a in accepted.values()})

    expected = {
        (SCRIPT_MODEL, "input"): float(sum(i for i, _ in answered.values())),
        (SCRIPT_MODEL, "output"): float(sum(o for _, o in answered.values())),
    }
    query = (
        f"sum by (gen_ai_request_model, gen_ai_token_type) "
        f'({PromNames.GEN_AI_TOKEN_USAGE}_sum{{job="{demo.worker_service}"}})'
    )
    by = ("gen_ai_request_model", "gen_ai_token_type")
    assert wait_for_prom(stack.prometheus_url, query, by, expected) == expected

    for topic, (input_tokens, output_tokens) in answered.items():
        trace_id = finished[accepted[topic]["project_id"]]["trace_id"]

        def gemini_span(trace_id=trace_id):
            found = jaeger_trace(stack.jaeger_url, trace_id)
            spans = [s for s in (found or {}).get("spans", []) if s["operationName"] == "gemini generateContent"]
            return spans[0] if spans else None

        tags = span_tags(wait_until(gemini_span, 30, interval=0.5, what="the Gemini span in Jaeger"))
        assert (tags["gen_ai.request.model"], tags["gen_ai.response.model"]) == (SCRIPT_MODEL, SCRIPT_MODEL)
        assert (tags["gen_ai.usage.input_tokens"], tags["gen_ai.usage.output_tokens"]) == (input_tokens, output_tokens)
        assert (tags["gen_ai.operation.name"], tags["gen_ai.provider.name"]) == ("generate_content", "gcp.gemini")


def _bucket_bounds(value: float) -> tuple[float, float]:
    lower = 0.0
    for upper in CALL_DURATION_BUCKETS:
        if value <= upper:
            return lower, upper
        lower = upper
    return lower, math.inf


def test_latency_quantiles_match_injected_latencies(demo, stack, fakes):
    """histogram_quantile P50/P90/P99 per service, from Prometheus, fall in the buckets of the injected latencies."""
    # 100 calls: 60 at 150 ms, 35 at 700 ms, 5 at 1.5 s -> P50 = 150 ms, P90 = 700 ms, P99 = 1.5 s, each
    # quantile's rank well inside its group, so one slow outlier cannot move it to the next bucket; each latency at
    # least 100 ms below its bucket's upper bound, so a busy machine's overhead on a call does not either.
    fakes.set_fault("gemini", mode="ok", latencies=[0.15] * 12 + [0.7] * 7 + [1.5])
    ids = {create_project(demo, ["gemini"])["project_id"] for _ in range(100)}
    wait_finished(demo, ids, timeout=180)
    job = demo.worker_service
    count_query = f'sum by (service) ({PromNames.CALL_DURATION}_count{{job="{job}"}})'
    assert wait_for_prom(stack.prometheus_url, count_query, ("service",), {("gemini",): 100.0}) == {("gemini",): 100.0}
    for quantile, injected in ((0.5, 0.15), (0.9, 0.7), (0.99, 1.5)):
        query = (
            f'histogram_quantile({quantile}, sum by (service, le) ({PromNames.CALL_DURATION}_bucket{{job="{job}"}}))'
        )
        (value,) = prom_values(stack.prometheus_url, query, ("service",)).values()
        lower, upper = _bucket_bounds(injected)
        assert lower <= value <= upper, f"P{quantile * 100:g} = {value}, injected {injected} (bucket {lower}..{upper})"


@pytest.mark.parametrize("demo", [{"env": {"DEMO_REQUEST_TIMEOUT_SECONDS": "0.5"}}], indirect=True)
def test_outcome_counts_equal_the_calls_made(demo, stack, fakes):
    """Calls per service, outcome and error code in Prometheus equal exactly the calls the test made."""
    plan = [  # (service, fault mode, projects, expected (outcome, error_code))
        ("gemini", "ok", 3, ("success", "")),
        ("gemini", "invalid_key", 2, ("error", "GEMINI_INVALID_API_KEY")),
        ("stability", "partial", 2, ("partial_failure", "STABILITY_PARTIAL_FAILURE")),
        ("stability", "ok", 1, ("success", "")),
        ("d-id", "quota", 1, ("error", "D_ID_QUOTA_EXCEEDED")),
        ("d-id", "ok", 1, ("success", "")),
        ("youtube", "ok", 2, ("success", "")),
        ("youtube", "quota", 1, ("error", "YOUTUBE_QUOTA_EXCEEDED")),
        ("gemini", "timeout", 1, ("timeout", "GEMINI_TIMEOUT")),
    ]
    expected: dict[tuple, float] = {}
    for service, mode, projects, (outcome, code) in plan:
        fakes.set_fault(service, mode=mode, latencies=[0], hang_seconds=2)
        ids = {create_project(demo, [service])["project_id"] for _ in range(projects)}
        wait_finished(demo, ids)
        key = (service, outcome, code)
        expected[key] = expected.get(key, 0) + projects
    job = demo.worker_service
    by_outcome: dict[tuple, float] = {}
    by_code: dict[tuple, float] = {}
    for (service, outcome, code), calls in expected.items():
        by_outcome[(service, outcome)] = by_outcome.get((service, outcome), 0) + calls
        if code:
            by_code[(service, code)] = by_code.get((service, code), 0) + calls
    query = f'sum by (service, outcome) ({PromNames.CALL_COUNT}{{job="{job}"}})'
    assert wait_for_prom(stack.prometheus_url, query, ("service", "outcome"), by_outcome) == by_outcome
    # Every error code's and retry series exists from set-up at 0 (counters start at zero): these are above it.
    query = f'sum by (service, error_code) ({PromNames.ERRORS}{{job="{job}"}}) > 0'
    assert wait_for_prom(stack.prometheus_url, query, ("service", "error_code"), by_code) == by_code
    # The timed-out Gemini call was retried once (max_retries=1); nothing else was retried.
    retries = f'sum by (service) ({PromNames.RETRIES}{{job="{job}"}}) > 0'
    assert wait_for_prom(stack.prometheus_url, retries, ("service",), {("gemini",): 1.0}) == {("gemini",): 1.0}
    projects = f'sum by (outcome) ({PromNames.PROJECTS_COMPLETED}{{job="{job}"}})'
    failed = 2 + 1 + 1 + 1  # invalid key, d-id quota, youtube quota, gemini timeout
    total = sum(p for _, _, p, _ in plan)
    want = {("success",): float(total - failed), ("failure",): float(failed)}
    assert wait_for_prom(stack.prometheus_url, projects, ("outcome",), want) == want


@pytest.mark.parametrize("demo", [{"env": {"DEMO_GEMINI_KEY_IN_QUERY": "true"}}], indirect=True)
def test_no_secret_reaches_spans_series_or_logs(demo, stack, fakes):
    """Keys sent as ?key=, x-goog-api-key, Bearer, Basic and OAuth secrets appear in no span, series or log file."""
    steps = list(SERVICE_KEYS)
    ids = {create_project(demo, steps)["project_id"]}
    for service in SERVICE_KEYS:  # failing calls record exceptions, whose messages carry URLs and bodies
        fakes.set_fault(service, mode="invalid_key")
        ids.add(create_project(demo, [service])["project_id"])
    wait_finished(demo, ids)
    for service in SERVICE_KEYS:
        fakes.set_fault(service, mode="ok")
    demo.stop()  # flushes every process's telemetry
    secrets = [v for k, v in DEMO_SECRETS.items() if k != "youtube_client_id"]

    def all_spans():
        text = ""
        for service in (demo.api_service, demo.worker_service):
            response = httpx.get(
                f"{stack.jaeger_url}/api/traces", params={"service": service, "limit": 1000}, timeout=10
            )
            text += response.text
        return (
            text
            if text.count('"traceID"') and "gemini generateContent" in text and "youtube videos.insert" in text
            else None
        )

    spans = wait_until(all_spans, 30, interval=1, what="the demo's traces in Jaeger")
    federate = httpx.get(f"{stack.prometheus_url}/federate", params={"match[]": '{__name__=~".+"}'}, timeout=30).text
    logs = "".join(p.read_text(errors="replace") for p in demo.workdir.rglob("*") if p.is_file() and p.suffix != ".mp4")
    assert "url.full" in spans and "?key=" not in federate
    for secret in secrets:
        assert secret not in spans, f"a secret reached Jaeger: {secret[:6]}..."
        assert secret not in federate, f"a secret reached Prometheus: {secret[:6]}..."
        assert secret not in logs, f"a secret reached a log file: {secret[:6]}..."
    assert "ya29." not in spans + logs  # the OAuth access tokens the fake issued


@pytest.mark.parametrize("demo", [{"env": {"OTEL_MONITOR_SPAN_SCHEDULE_DELAY_SECONDS": "60"}}], indirect=True)
def test_failures_across_worker_processes_make_one_streak(demo, stack, fakes, workdir):
    """With the backend on default settings, 11 invalid-key failures handled by two worker processes are one streak
    of 11, in Redis and in Prometheus (exported by the monitor, as job=its service name); a success ends it (what
    stays is its recent peak). The projects' users are the monitor's video_active_users, as Redis counts them."""
    monitor_service = f"monitor-{demo.api_service}"
    with MonitorProcess(stack, workdir / "monitor", service_name=monitor_service):
        streaks = RedisFailureStreaks(redis.Redis.from_url(stack.redis_url))
        streaks.reset(["gemini"])
        fakes.set_fault("gemini", mode="invalid_key")
        users = [f"{demo.api_service}-user{i % 3}" for i in range(11)]
        ids = {create_project(demo, ["gemini"], user_id=user)["project_id"] for user in users}
        finished = wait_finished(demo, ids)
        streak = streaks.current("gemini")
        assert streak.count == 11
        assert streak.last_trace_id in {line["trace_id"] for line in finished.values()}
        query = f'max by (service) ({PromNames.CONSECUTIVE_FAILURES}{{job="{monitor_service}", service="gemini"}})'
        assert wait_for_prom(stack.prometheus_url, query, ("service",), {("gemini",): 11.0}) == {("gemini",): 11.0}
        active = ActiveUsers(redis.Redis.from_url(stack.redis_url)).count()
        assert active >= 3  # the three users of this test, beside those of earlier tests today
        query = f'{PromNames.ACTIVE_USERS}{{job="{monitor_service}"}}'
        assert wait_for_prom(stack.prometheus_url, query, (), {(): float(active)}) == {(): float(active)}
        fakes.set_fault("gemini", mode="ok")
        wait_finished(demo, {create_project(demo, ["gemini"])["project_id"]})
        assert streaks.current("gemini") == Streak(11, streak.last_trace_id, ended=True)


@pytest.mark.parametrize(
    "demo", [{"env": {"OTEL_MONITOR_OTLP_ENDPOINT": "http://127.0.0.1:{blackhole}"}}], indirect=True
)
def test_backend_answers_in_time_while_the_collector_hangs(demo):
    """A collector that accepts connections and never answers: requests still answer within the export timeout
    (2 s) and tasks finish; exports give up in their background threads."""
    with httpx.Client(timeout=2.0) as client:  # the configured export timeout bounds every answer
        ids = set()
        for _ in range(10):
            response = client.post(f"{demo.api_url}/api/v1/projects", json={"topic": "hang", "steps": ["gemini"]})
            assert response.status_code == 202
            ids.add(response.json()["project_id"])
    finished = wait_finished(demo, ids)
    assert {line["outcome"] for line in finished.values()} == {"success"}


def test_quota_units_of_calls_are_counted_in_redis(demo, stack):
    """Each Gemini request counts 1 unit and each YouTube upload 1600, summed across processes in Redis."""
    counter = UsageCounter(redis.Redis.from_url(stack.redis_url), background=False)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    before = {service: counter.used(service, since) for service in ("gemini", "youtube")}
    ids = {create_project(demo, ["gemini", "youtube"])["project_id"] for _ in range(3)}
    wait_finished(demo, ids)
    demo.stop()  # the usage increments are written by a background thread, flushed at shutdown
    after = {service: counter.used(service, since) for service in ("gemini", "youtube")}
    assert {s: after[s] - before[s] for s in after} == {"gemini": 3.0, "youtube": 3 * 1600.0}


def test_stopping_the_backend_right_after_its_work_loses_no_span(demo, stack):
    """SIGTERM to the API and worker after the last project: every span reaches Jaeger, flushed at shutdown
    (the batch delay is 60 s here, so no span leaves before its process stops)."""
    accepted = [create_project(demo, ["gemini"]) for _ in range(30)]
    wait_finished(demo, {a["project_id"] for a in accepted})
    demo.stop()
    wanted = {"POST /api/v1/projects", "apply_async/video.generate", "run/video.generate", "gemini generateContent"}

    def all_complete():
        response = httpx.get(
            f"{stack.jaeger_url}/api/traces", params={"service": demo.api_service, "limit": 1000}, timeout=30
        )
        traces = {t["traceID"]: {s["operationName"] for s in t["spans"]} for t in response.json()["data"]}
        return all(wanted <= traces.get(a["trace_id"], set()) for a in accepted)

    wait_until(all_complete, 30, interval=1, what="all 30 traces complete in Jaeger")


def test_backend_keeps_serving_while_the_collector_is_down(demo, stack):
    """With the collector stopped mid-run, requests still succeed and tasks still finish; telemetry resumes after."""
    first = create_project(demo, ["gemini"])
    wait_finished(demo, {first["project_id"]})
    stack["collector"].stop()
    try:
        ids = set()
        for _ in range(5):
            response = httpx.post(
                f"{demo.api_url}/api/v1/projects", json={"topic": "down", "steps": ["gemini"]}, timeout=10
            )
            assert response.status_code == 202
            ids.add(response.json()["project_id"])
        finished = wait_finished(demo, ids)
        assert all(line["outcome"] == "success" for line in finished.values())
        errors = [
            line
            for line in read_log_lines(demo.log_dir)
            if line["level"] in ("error", "critical")
            and "Traceback" in json.dumps(line)
            and "project" in json.dumps(line)
        ]
        assert errors == []
    finally:
        stack.processes["collector"] = stack.collector().start()

"""Rule evaluation: the check and Prometheus sources, intervals, unknown-is-not-clear, and transitions end to end."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pydantic
import pytest

from otel_monitor.instrument.failure_streaks import LocalFailureStreaks
from otel_monitor.monitor.alerting.evaluate.evaluator import (
    BACKEND_DOWN_RULE,
    MONITORING_BACKEND_DOWN,
    Evaluator,
    default_interval,
)
from otel_monitor.monitor.alerting.evaluate.sources import (
    CheckSource,
    CheckThresholds,
    PrometheusSource,
    Sample,
    SourceError,
    SourceUnavailable,
    streak_trace_lookup,
)
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority, Rule, fingerprint
from otel_monitor.monitor.config import AlertingConfig
from otel_monitor.monitor.quota.service import QuotaView
from tests.support.backends import closed_port
from tools.devstack import wait_until

T0 = dt.datetime(2025, 10, 20, 10, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def make_rule(name="r", expr="vector(1) > 0", source="promql", priority=Priority.P0, **fields) -> Rule:
    fields.setdefault("error_code", "TEST_CONDITION")
    return Rule(
        name=name, priority=priority, source=source, expr=expr, summary="s", action_required="a", runbook="r", **fields
    )


# -- the service's own objects, standing in for the running services ------------------------------------------------
class HealthStub:
    """Answers report() like HealthService, with the check statuses set by the test."""

    def __init__(self, **statuses: str) -> None:
        self.statuses = statuses

    @property
    def last_report(self):
        return {
            "status": "healthy",
            "timestamp": "2025-10-20T10:00:00.000Z",
            "checks": {name: {"status": status} for name, status in self.statuses.items()},
        }

    async def report(self):
        return self.last_report


class QuotaStub:
    """Answers latest() like QuotaService, with real QuotaViews."""

    def __init__(self, **usage: tuple[float, str]) -> None:
        self.views = [
            QuotaView(
                service=s,
                used=p,
                total=100,
                unit="credits",
                percentage=p,
                status=status,
                reset_date=None,
                forecast_exhausted_at=None,
                stale=False,
                error_code=None,
                read_at=T0,
            )
            for s, (p, status) in usage.items()
        ]

    def latest(self):
        return self.views


def streaks_of(**counts: int) -> LocalFailureStreaks:
    streaks = LocalFailureStreaks()
    for service, count in counts.items():
        for i in range(count):
            streaks.record(service, True, f"{service}-trace-{i}")
    return streaks


# -- CheckSource ----------------------------------------------------------------------------------------------------
CHECKS = CheckSource(
    HealthStub(database="healthy", redis="unhealthy", disk="unhealthy", celery="degraded"),
    QuotaStub(
        gemini=(49, "healthy"), **{"d-id": (92, "critical")}, stability=(100, "exceeded"), youtube=(85, "warning")
    ),
    streaks_of(gemini=11, stability=10, youtube=3),
)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "expr, samples",
    [
        ("health.redis", [Sample({"check": "redis"}, 1.0)]),
        ("health.disk", [Sample({"check": "disk"}, 1.0)]),
        ("health.database", []),
        ("health.celery", []),  # degraded is not unhealthy
        ("quota.d-id", [Sample({"service": "d-id"}, 8.0)]),
        ("quota.stability", [Sample({"service": "stability"}, 0.0)]),
        ("quota.youtube", []),  # 15 % left: a warning, not < 10 %
        ("quota.*", [Sample({"service": "stability"}, 0.0), Sample({"service": "d-id"}, 8.0)]),
        ("streak.gemini", [Sample({"service": "gemini"}, 11.0, "gemini-trace-10")]),
        ("streak.stability", []),  # 10 is not > 10
        ("streak.youtube > 2", [Sample({"service": "youtube"}, 3.0, "youtube-trace-2")]),
        ("streak.*", [Sample({"service": "gemini"}, 11.0, "gemini-trace-10")]),
    ],
)
async def test_check_source_table(expr, samples):
    """health.<check> holds when unhealthy, quota.<p> when critical/exceeded, streak.<p> above 10 with its trace."""
    assert await CHECKS.evaluate(make_rule(source="check", expr=expr)) == samples


@pytest.mark.asyncio
@pytest.mark.parametrize("expr", ["health.nope", "quota.acme", "quota.gemini > 3", "bogus", "streak.acme"])
async def test_check_source_unknown_is_an_error(expr):
    """A check the services cannot answer is an evaluation error (unknown), never an empty (clear) result."""
    source = CheckSource(HealthStub(redis="healthy"), QuotaStub(), streaks_of())
    with pytest.raises(SourceError):
        await source.evaluate(make_rule(source="check", expr=expr))


@pytest.mark.asyncio
async def test_check_source_threshold_is_configurable():
    """CheckThresholds moves the streak threshold."""
    source = CheckSource(streaks=streaks_of(gemini=4), thresholds=CheckThresholds(streak_above=3))
    assert [s.value for s in await source.evaluate(make_rule(source="check", expr="streak.gemini"))] == [4.0]


# -- PrometheusSource -----------------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "status, body, error",
    [
        (503, {"status": "error", "errorType": "unavailable", "error": "shutting down"}, SourceUnavailable),
        (500, "oops", SourceUnavailable),
        (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}, SourceError),
        (422, {"status": "error", "errorType": "execution", "error": "many-to-many"}, SourceError),
    ],
)
async def test_prometheus_http_errors_are_classified(status, body, error):
    """5xx is the backend down (SourceUnavailable); 400/422 blame the rule's query (SourceError only)."""

    def answer(request):
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(error) as raised:
            await PrometheusSource("http://prometheus.test", client).evaluate(make_rule())
    assert (type(raised.value) is SourceUnavailable) == (error is SourceUnavailable)


@pytest.mark.asyncio
async def test_prometheus_unreachable_is_unavailable():
    """Nothing listening on the port: SourceUnavailable naming prometheus."""
    source = PrometheusSource(f"http://127.0.0.1:{closed_port()}", timeout=1.0)
    with pytest.raises(SourceUnavailable) as raised:
        await source.evaluate(make_rule())
    await source.aclose()
    assert raised.value.backend == "prometheus"


@pytest.fixture
def prometheus(stack):
    """The stack's Prometheus, once it has scraped the collector."""

    def collector_up():
        body = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": 'up{job="otel-collector"}'}).json()
        return body["data"]["result"] or None

    wait_until(collector_up, 60, interval=0.5, what="Prometheus to scrape the collector")
    return stack.prometheus_url


@pytest.mark.stack
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "expr, samples",
    [
        ('up{job="otel-collector"} > 0', [Sample({}, 1.0)]),  # job/instance dropped: a target-independent alert
        ('up{job="otel-collector"} > 5', []),
        ("vector(1) > 0", [Sample({}, 1.0)]),
        ('label_replace(vector(3), "service", "gemini", "", "")', [Sample({"service": "gemini"}, 3.0)]),
        ("sum by (job) (up) > 100", []),
    ],
)
async def test_prometheus_source_on_real_prometheus(prometheus, expr, samples):
    """An instant query on the real Prometheus: one sample per result series, empty when the condition is clear."""
    async with httpx.AsyncClient() as client:
        assert await PrometheusSource(prometheus, client).evaluate(make_rule(expr=expr)) == samples


@pytest.mark.stack
@pytest.mark.asyncio
async def test_prometheus_rejects_a_bad_query_as_rule_error(prometheus):
    """A query Prometheus cannot parse is the rule's fault: SourceError, not a backend outage."""
    async with httpx.AsyncClient() as client:
        with pytest.raises(SourceError) as raised:
            await PrometheusSource(prometheus, client).evaluate(make_rule(expr="up{"))
    assert not isinstance(raised.value, SourceUnavailable) and "bad_data" in str(raised.value)


class SwitchableTransport(httpx.AsyncBaseTransport):
    """Sends every request to the real Prometheus or to a dead port, as the test switches it."""

    def __init__(self, live_url: str) -> None:
        self.live = httpx.URL(live_url)
        self.dead = httpx.URL(f"http://127.0.0.1:{closed_port()}")
        self.up = True
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request):
        target = self.live if self.up else self.dead
        request.url = request.url.copy_with(host=target.host, port=target.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self):
        await self._inner.aclose()


@pytest.mark.stack
@pytest.mark.asyncio
async def test_prometheus_down_fires_backend_down_and_resolves_nothing(prometheus):
    """Prometheus unreachable: metric alerts keep firing (unknown is not clear), MONITORING_BACKEND_DOWN fires
    once after its for duration, and resolves once Prometheus answers again."""
    transport = SwitchableTransport(prometheus)
    sent = []
    rule = make_rule("collector_up", 'up{job="otel-collector"} > 0', clear_for_seconds=0)
    async with httpx.AsyncClient(transport=transport) as client:
        evaluator = Evaluator([rule], {"promql": PrometheusSource("http://prometheus.test", client, timeout=2.0)})

        async def evaluate(now):
            sent.extend(
                (c.alert.rule, c.transition, c.alert.error_code)
                for c in await evaluator.evaluate_once(now)
                if c.announced
            )

        await evaluate(at(0))
        assert sent == [("collector_up", "firing", "TEST_CONDITION")]
        transport.up = False
        for second in (5, 10, 15, 20):
            await evaluate(at(second))
        assert sent[1:] == [(BACKEND_DOWN_RULE.name, "firing", MONITORING_BACKEND_DOWN)]
        assert {a.rule: a.state for a in evaluator.alerts()} == {
            "collector_up": AlertState.FIRING,
            BACKEND_DOWN_RULE.name: AlertState.FIRING,
        }
        down = next(a for a in evaluator.alerts() if a.rule == BACKEND_DOWN_RULE.name)
        assert (down.priority, down.labels) == (Priority.P0, {"backend": "prometheus"})
        transport.up = True
        await evaluate(at(25))
        assert sent[2:] == [(BACKEND_DOWN_RULE.name, "resolved", MONITORING_BACKEND_DOWN)]
        assert [a.rule for a in evaluator.alerts()] == ["collector_up"]


class PrometheusStandIn:
    """Prometheus's instant-query API answering an empty vector after ``delay`` seconds. It records the queries in
    arrival order and the most it had in flight at once, which the real Prometheus cannot tell a test."""

    def __init__(self) -> None:
        self.delay = 0.02
        self.queries: list[str] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with stand_in._lock:
                    stand_in.queries.append(parse_qs(urlsplit(self.path).query)["query"][0])
                    stand_in._in_flight += 1
                    stand_in.max_in_flight = max(stand_in.max_in_flight, stand_in._in_flight)
                time.sleep(stand_in.delay)
                with stand_in._lock:
                    stand_in._in_flight -= 1
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # every unbounded query connects at once; none should wait on the backlog

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def stand_in():
    server = PrometheusStandIn()
    yield server
    server.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("bound", [1, 3])
async def test_queries_in_flight_never_exceed_the_configured_bound(stand_in, bound):
    """alerting.max_concurrent_queries of 1 or 3 and 50 rules due at once: that many queries in flight at most,
    and every rule evaluated in the one pass (none is due again a second later)."""
    config = AlertingConfig(prometheus_url=stand_in.url, max_concurrent_queries=bound)
    rules = [make_rule(f"r{i}", f"vector({i}) > 0", priority=Priority.P1) for i in range(50)]
    async with httpx.AsyncClient() as client:
        source = PrometheusSource(
            config.prometheus_url,
            client,
            timeout=30,  # a busy host still gets all 50 in
            max_concurrent_queries=config.max_concurrent_queries,
        )
        evaluator = Evaluator(rules, {"promql": source})
        await evaluator.evaluate_once(at(0))
        await evaluator.evaluate_once(at(1))
    assert stand_in.max_in_flight == bound
    assert sorted(stand_in.queries) == sorted(rule.expr for rule in rules)


@pytest.mark.asyncio
async def test_the_service_takes_the_bound_from_its_config(stand_in, tmp_path):
    """``alerting.max_concurrent_queries`` of the config file is the bound of the served evaluator."""
    from types import SimpleNamespace

    from otel_monitor.monitor.alerting.service import AlertingService
    from otel_monitor.monitor.config import MonitorConfig

    config = MonitorConfig.model_validate(
        {
            "quota": {"store_url": f"sqlite:///{tmp_path / 'store.db'}"},
            "alerting": {"enabled": True, "prometheus_url": stand_in.url, "max_concurrent_queries": 2},
        }
    )
    rules = [make_rule(f"r{i}", f"vector({i}) > 0", priority=Priority.P1) for i in range(12)]
    async with httpx.AsyncClient() as client:
        service = AlertingService.from_config(
            config, rules, health=None, quota=SimpleNamespace(latest=list), http_client=client
        )
        await service.evaluator.evaluate_once(at(0))
    assert stand_in.max_in_flight == 2
    assert sorted(stand_in.queries) == sorted(rule.expr for rule in rules)


@pytest.mark.asyncio
async def test_a_slow_prometheus_holds_a_pass_no_longer_than_the_timeout(stand_in):
    """Queries take 1 s, one slot, a 0.5 s timeout, four P1 rules listed before a P0: the pass still ends within
    about the timeout (waiting for a slot counts), the P0 query went first, and the P1 rules that never got a slot
    stay due: the next pass, a second later, evaluates them instead of 15 minutes later."""
    stand_in.delay = 1.0
    rules = [
        *(make_rule(f"p1_{i}", f"vector({i}) > 0", priority=Priority.P1) for i in range(4)),
        make_rule("p0", "vector(100) > 0", priority=Priority.P0),
    ]
    async with httpx.AsyncClient() as client:
        evaluator = Evaluator(
            rules, {"promql": PrometheusSource(stand_in.url, client, timeout=0.5, max_concurrent_queries=1)}
        )
        start = time.perf_counter()
        await evaluator.evaluate_once(at(0))
        took = time.perf_counter() - start
        assert stand_in.queries == ["vector(100) > 0"] and took < 1.5  # one slot at a time would take 2.5 s
        stand_in.delay = 0.0
        await evaluator.evaluate_once(at(1))
    assert stand_in.queries[1:] == [f"vector({i}) > 0" for i in range(4)]


@pytest.mark.asyncio
async def test_a_slot_freed_late_is_busy_not_an_outage(stand_in):
    """One slot, a 1 s timeout, queries taking 0.7 s: the second rule gets the slot with 0.3 s left; it is not sent
    (it would time out on a merely busy Prometheus) and nothing counts Prometheus as down."""
    stand_in.delay = 0.7
    rules = [
        make_rule("p0", "vector(1) > 0", priority=Priority.P0),
        make_rule("p1", "vector(2) > 0", priority=Priority.P1),
    ]
    async with httpx.AsyncClient() as client:
        evaluator = Evaluator(
            rules, {"promql": PrometheusSource(stand_in.url, client, timeout=1.0, max_concurrent_queries=1)}
        )
        await evaluator.evaluate_once(at(0))
    assert stand_in.queries == ["vector(1) > 0"]
    assert [alert.rule for alert in evaluator.alerts() if alert.rule == BACKEND_DOWN_RULE.name] == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: AlertingConfig(max_concurrent_queries=0),
        lambda: PrometheusSource("http://prometheus.test", max_concurrent_queries=0),
    ],
)
def test_a_bound_below_one_is_refused(make):
    """No query could ever run: the config and the source refuse a bound of 0."""
    with pytest.raises((pydantic.ValidationError, ValueError)):
        make()


# -- Evaluator ------------------------------------------------------------------------------------------------------
class Recorder:
    """Keeps the transitions announced in the changes it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, str]] = []
        self.alerts: list[Alert] = []
        self.now = 0.0

    def take(self, changes) -> None:
        for change in changes:
            if change.announced:
                self.calls.append((self.now, change.alert.rule, change.transition))
                self.alerts.append(change.alert)


async def drive(evaluator: Evaluator, recorder: Recorder, steps, act=lambda second: None):
    for second in steps:
        act(second)
        recorder.now = second
        recorder.take(await evaluator.evaluate_once(at(second)))


@pytest.mark.asyncio
async def test_end_to_end_for_clear_and_return():
    """Holds from 0 s with for 30 s, clears, returns within clear_for, clears for good: one firing, one resolved,
    with the streak's trace id and its Jaeger link."""
    streaks = LocalFailureStreaks(peak_ttl=0)  # a success clears at once: this test drives for/clear, not peaks
    rule = make_rule(
        "gemini_streak",
        "streak.gemini",
        source="check",
        for_seconds=30,
        clear_for_seconds=60,
        error_code="GEMINI_CONSECUTIVE_FAILURES",
    )
    recorder = Recorder()
    evaluator = Evaluator([rule], {"check": CheckSource(streaks=streaks)}, jaeger_base="http://jaeger:16686/")
    plan = {0: ("fail", 11), 35: ("ok", 1), 40: ("fail", 11), 45: ("ok", 1)}

    def act(second):
        if second in plan:
            kind, times = plan[second]
            for i in range(times):
                streaks.record("gemini", kind == "fail", f"trace-{second}-{i}")

    await drive(evaluator, recorder, range(0, 130, 5), act)
    assert recorder.calls == [(30, "gemini_streak", "firing"), (105, "gemini_streak", "resolved")]
    fired, resolved = recorder.alerts
    assert (fired.trace_id, fired.jaeger_url, fired.value) == (
        "trace-0-10",
        "http://jaeger:16686/trace/trace-0-10",
        11.0,
    )
    assert (fired.labels, fired.starts_at) == ({"service": "gemini"}, at(0))
    assert resolved.ends_at == at(45) and resolved.fingerprint == fired.fingerprint


class CountingSource:
    """A source that records when each rule was evaluated and answers what the test set."""

    name = "counting"

    def __init__(self) -> None:
        self.evaluated: dict[str, list[dt.datetime]] = {}
        self.answers: dict[str, list[Sample] | Exception] = {}

    async def evaluate(self, rule):
        self.evaluated.setdefault(rule.name, []).append(self.now)
        answer = self.answers.get(rule.name, [])
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.mark.parametrize(
    "rule, seconds",
    [
        (make_rule(priority=Priority.P0), 5),
        (make_rule(priority=Priority.P1), 60),
        (make_rule(priority=Priority.P2), 300),
        (make_rule(priority=Priority.P1, source="check", expr="quota.gemini"), 60),
        (make_rule(priority=Priority.P0, source="check", expr="health.disk"), 5),
        (make_rule(priority=Priority.P0, source="check", expr="health.redis"), 5),
        (make_rule(priority=Priority.P1, error_code="D_ID_QUOTA_EXCEEDED"), 60),
        (make_rule(priority=Priority.P0, interval_seconds=2), 2),
        (make_rule(priority=Priority.P2, interval_seconds=3600), 3600),
    ],
)
def test_default_intervals(rule, seconds):
    """P0 every 5 s (the disk P0 included), P1 every minute (quota included), P2 every 5 min; interval_seconds
    overrides."""
    assert default_interval(rule) == seconds


@pytest.mark.asyncio
async def test_rules_are_evaluated_when_due():
    """evaluate_once runs only the rules whose interval has passed since their last evaluation."""
    source = CountingSource()
    rules = [
        make_rule("p0", priority=Priority.P0),
        make_rule("p1", priority=Priority.P1),
        make_rule("slow", priority=Priority.P2, interval_seconds=900),
    ]
    evaluator = Evaluator(rules, {"promql": source})
    for second in range(0, 1201, 5):
        source.now = second
        await evaluator.evaluate_once(at(second))
    assert len(source.evaluated["p0"]) == 241
    assert source.evaluated["p1"] == list(range(0, 1201, 60))
    assert source.evaluated["slow"] == [0, 900]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "error", [SourceError("bad query"), SourceUnavailable("prometheus", "down"), RuntimeError("bug")]
)
async def test_unknown_is_not_clear(error):
    """A rule that cannot be evaluated keeps its firing alert: it does not resolve, whatever the error."""
    source = CountingSource()
    recorder = Recorder()
    evaluator = Evaluator([make_rule("r", clear_for_seconds=0)], {"promql": source})
    source.now, source.answers["r"] = 0, [Sample({"service": "gemini"}, 1.0)]
    recorder.take(await evaluator.evaluate_once(at(0)))
    source.answers["r"] = error
    for second in range(5, 120, 5):
        source.now = second
        recorder.take(await evaluator.evaluate_once(at(second)))
    assert [(r, t) for _, r, t in recorder.calls if r == "r"] == [("r", "firing")]
    assert [a.state for a in evaluator.alerts() if a.rule == "r"] == [AlertState.FIRING]


@pytest.mark.asyncio
async def test_inhibited_alerts_are_named_then_released():
    """Redis down holds the streak alert back and names it; when Redis recovers, the still-firing streak is sent."""
    health = HealthStub(redis="unhealthy")
    streaks = streaks_of(gemini=12)
    redis_rule = make_rule(
        "redis_down", "health.redis", source="check", clear_for_seconds=0, error_code="REDIS_CONNECTION_FAILED"
    )
    streak_rule = make_rule("api_streak", "streak.*", source="check", inhibited_by=("redis_down",))
    recorder = Recorder()
    evaluator = Evaluator(
        [redis_rule, streak_rule],
        {"check": CheckSource(health, streaks=streaks)},
        trace_lookup=streak_trace_lookup(streaks),
    )
    await drive(evaluator, recorder, [0, 5])
    assert recorder.calls == [(0, "redis_down", "firing")]
    assert recorder.alerts[0].inhibited == ("api_streak (gemini)",)
    health.statuses["redis"] = "healthy"
    await drive(evaluator, recorder, [10, 15])
    assert recorder.calls[1:] == [(10, "redis_down", "resolved"), (10, "api_streak", "firing")]
    assert recorder.alerts[2].trace_id == "gemini-trace-11"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "logs_base, logs_url",
    [
        ("http://logs:9428/", "http://logs:9428/select/vmui/#/?query=trace_id%3A%22gemini-trace-1%22"),
        (None, None),  # no log store configured: no logs link
    ],
)
async def test_trace_lookup_for_alerts_with_a_service(logs_base, logs_url):
    """A PromQL alert with a service label (invalid key) gets the provider's last failing trace, its Jaeger link
    and, when VictoriaLogs is configured, the link to the trace's log lines there."""
    source = CountingSource()
    streaks = streaks_of(gemini=2)
    recorder = Recorder()
    evaluator = Evaluator(
        [make_rule("invalid_key", error_code="GEMINI_INVALID_API_KEY")],
        {"promql": source},
        trace_lookup=streak_trace_lookup(streaks),
        jaeger_base="http://jaeger",
        logs_base=logs_base,
    )
    source.now, source.answers["invalid_key"] = 0, [Sample({"service": "gemini"}, 1.0)]
    recorder.take(await evaluator.evaluate_once(at(0)))
    assert (recorder.alerts[0].trace_id, recorder.alerts[0].jaeger_url, recorder.alerts[0].logs_url) == (
        "gemini-trace-1",
        "http://jaeger/trace/gemini-trace-1",
        logs_url,
    )


@pytest.mark.asyncio
async def test_restore_does_not_notify_again():
    """Firing alerts restored after a restart are not sent again; they resolve once when the condition clears."""
    rule = make_rule("r", clear_for_seconds=0)
    labels = {"service": "youtube"}
    restored = Alert(
        fingerprint=fingerprint("r", labels),
        rule="r",
        priority=Priority.P0,
        state=AlertState.FIRING,
        error_code="TEST_CONDITION",
        summary="s",
        action_required="a",
        runbook="r",
        labels=labels,
        starts_at=at(-100),
    )
    source = CountingSource()
    recorder = Recorder()
    evaluator = Evaluator([rule], {"promql": source})
    evaluator.restore([restored])
    source.now, source.answers["r"] = 0, [Sample(labels, 1.0)]
    await drive(evaluator, recorder, [0])
    source.answers["r"] = []
    await drive(evaluator, recorder, [5, 10])
    assert recorder.calls == [(5, "r", "resolved")]


@pytest.mark.asyncio
async def test_run_loops_until_stopped():
    """The service's evaluation loop evaluates on its own clock until stop()."""
    import asyncio

    from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
    from otel_monitor.monitor.alerting.delivery.outbox import Outbox
    from otel_monitor.monitor.alerting.routing import DeliveryConfig
    from otel_monitor.monitor.alerting.service import AlertingService

    source = CountingSource()
    source.now = 0
    outbox = Outbox()
    service = AlertingService(
        [make_rule("r", interval_seconds=0.05)], {"promql": source}, outbox, Dispatcher(outbox, {}), DeliveryConfig()
    )
    await service.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30  # a bound, not a speed: the loop keeps evaluating on its own
    while len(source.evaluated.get("r", [])) < 3 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.wait_for(service.stop(), 5)
    evaluations = len(source.evaluated["r"])
    assert evaluations >= 3
    await asyncio.sleep(0.2)
    assert len(source.evaluated["r"]) == evaluations, "evaluated after stop()"


@pytest.mark.parametrize(
    "rules, sources, message",
    [
        ([make_rule("a"), make_rule("a")], {"promql": CountingSource()}, "unique"),
        ([make_rule("a", source="check", expr="health.redis")], {"promql": CountingSource()}, "no source"),
        ([make_rule(BACKEND_DOWN_RULE.name)], {"promql": CountingSource()}, "reserved"),
    ],
)
def test_invalid_evaluator_setup(rules, sources, message):
    """Duplicate names, a missing source or the reserved backend-down name are refused at construction."""
    with pytest.raises(ValueError, match=message):
        Evaluator(rules, sources)

"""The status page's data: states, Prometheus reads, uptime history, the rendered page and the live messages."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otel_monitor.instrument.providers import ProviderRegistry
from otel_monitor.monitor.alerting.model import AlertState, Priority
from otel_monitor.monitor.alerting.notifiers.websocket import WebSocketHub
from otel_monitor.monitor.alerting.router import ALERTS_WS_PATH, build_alerts_router
from otel_monitor.monitor.health.service import HealthService
from otel_monitor.monitor.quota.service import QuotaView
from otel_monitor.monitor.status.collect import StatusCollector, overall_state, provider_state
from otel_monitor.monitor.status.model import ActiveAlert, ProviderMetrics
from otel_monitor.monitor.status.provider_metrics import SPARKLINE_POINTS, ProviderMetricsReader
from otel_monitor.monitor.status.render import render_alert_page, render_status_page
from otel_monitor.monitor.status.router import STATUS_WS_PATH, build_status_router
from otel_monitor.monitor.status.service import StatusService
from otel_monitor.monitor.status.uptime import UptimeCounts, UptimeStore, uptime_days
from tests.support.alerts import make_alert

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


def quota_view(status: str = "healthy", percentage: float | None = 40.0) -> QuotaView:
    return QuotaView(
        "gemini", 40.0, 100.0, "requests", percentage, status, NOW + dt.timedelta(hours=3), None, False, None, NOW
    )


def metrics(rate: float | None, *, available: bool = True) -> ProviderMetrics:
    return ProviderMetrics(available=available, calls=0 if rate is None else 100, success_rate=rate)


@pytest.mark.parametrize(
    ("provider_metrics", "quota", "state"),
    [
        (metrics(None), None, "unknown"),  # no traffic, no quota reading
        (metrics(0.99, available=False), None, "unknown"),  # Prometheus away
        (metrics(0.99), None, "up"),
        (metrics(0.9), None, "degraded"),
        (metrics(0.2), None, "down"),
        (metrics(None), quota_view(), "up"),
        (metrics(None), quota_view("critical", 95.0), "degraded"),
        (metrics(0.99), quota_view("exceeded", 100.0), "down"),
        (metrics(0.2), quota_view(), "down"),
        (metrics(None), quota_view("unknown", None), "unknown"),
    ],
)
def test_provider_state_is_the_worse_of_calls_and_quota(provider_metrics, quota, state):
    """Success rate below 95 % degrades, below 50 % downs; a critical quota degrades, an exceeded one downs."""
    assert provider_state(provider_metrics, quota) == state


def alert_of(priority: Priority, state: AlertState) -> ActiveAlert:
    return ActiveAlert(
        fingerprint="f",
        rule="r",
        priority=priority.value,
        state=state.value,
        service=None,
        summary="s",
        starts_at=NOW,
        jaeger_url=None,
    )


@pytest.mark.parametrize(
    ("alerts", "state"),
    [
        ([], "up"),
        ([alert_of(Priority.P0, AlertState.PENDING)], "up"),
        ([alert_of(Priority.P1, AlertState.FIRING)], "up"),
        ([alert_of(Priority.P0, AlertState.FIRING)], "down"),
    ],
)
def test_a_firing_p0_makes_the_overall_state_down(alerts, state):
    """With every component up, the overall state follows the active P0s alone."""
    assert overall_state([], [], alerts) == state


# -- Prometheus ---------------------------------------------------------------------------------------------------
def prometheus(handler) -> ProviderMetricsReader:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ProviderMetricsReader("http://prometheus.local", http_client=client, clock=NOW.timestamp)


def answering(request: httpx.Request) -> httpx.Response:
    query = request.url.params["query"]
    if request.url.path.endswith("query_range"):
        start = float(request.url.params["start"])
        values = [[start + 300 * i, str(0.1 * (i + 1))] for i in range(SPARKLINE_POINTS)]
        result = [{"metric": {"service": "gemini"}, "values": values}]
    elif "probe_success" in query:
        result = [{"metric": {"service": "video-api"}, "value": [0, "1"]}]
    elif "histogram_quantile" in query:
        result = [
            {"metric": {"service": "gemini"}, "value": [0, "0.42"]},
            {"metric": {"service": "d-id"}, "value": [0, "NaN"]},
        ]
    elif "success" in query:
        result = [
            {"metric": {"service": "gemini"}, "value": [0, "90"]},
            {"metric": {"service": "d-id"}, "value": [0, "0"]},
        ]
    else:
        result = [
            {"metric": {"service": "gemini"}, "value": [0, "100"]},
            {"metric": {"service": "d-id"}, "value": [0, "0"]},
        ]
    return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})


def test_provider_metrics_from_prometheus():
    """Success rate and P90 of the hour with a 12-point sparkline; a provider without calls has no rates."""
    found = asyncio.run(prometheus(answering).read(["gemini", "d-id", "youtube"]))
    gemini = found["gemini"]
    assert (gemini.available, gemini.calls, gemini.success_rate, gemini.p90_seconds) == (True, 100, 0.9, 0.42)
    assert gemini.sparkline == pytest.approx([0.1 * (i + 1) for i in range(SPARKLINE_POINTS)])
    for idle in ("d-id", "youtube"):
        assert (found[idle].available, found[idle].calls, found[idle].success_rate, found[idle].p90_seconds) == (
            True,
            0,
            None,
            None,
        )


@pytest.mark.parametrize(
    "handler",
    [
        lambda request: httpx.Response(503, text="down"),
        lambda request: httpx.Response(200, json={"status": "error", "error": "bad"}),
        lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused")),
    ],
    ids=["http-503", "query-error", "refused"],
)
def test_prometheus_away_makes_every_provider_unavailable(handler):
    """No answer from Prometheus: every provider's metrics are unavailable, nothing raises."""
    found = asyncio.run(prometheus(handler).read(["gemini", "stability"]))
    assert {key: value.available for key, value in found.items()} == {"gemini": False, "stability": False}


def probes_answering(results: list[tuple[str, str]]):
    """A Prometheus answering ``results`` ((service, value)) to the outside-probe query; refusing if None."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert 'probe_success{job="blackbox-http"}' in request.url.params["query"]
        series = [{"metric": {"service": service}, "value": [0, value]} for service, value in results]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": series}})

    return handler


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([], {}),  # nothing probed
        ([("video-api", "1")], {"video-api": True}),
        ([("video-api", "0"), ("admin-api", "1")], {"video-api": False, "admin-api": True}),
        ([("video-api", "NaN"), ("", "0")], {}),  # no reading, no service label: not a probed service
    ],
)
def test_outside_probes_from_prometheus(results, expected):
    """Each service the blackbox exporter probes is up while all its probes pass (min of probe_success is 1)."""
    assert asyncio.run(prometheus(probes_answering(results)).outside_probes()) == expected


@pytest.mark.parametrize(
    "handler",
    [
        lambda request: httpx.Response(503, text="down"),
        lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused")),
    ],
    ids=["http-503", "refused"],
)
def test_outside_probes_unavailable_when_prometheus_is_away(handler):
    """No answer from Prometheus: None (unknown), never an exception."""
    assert asyncio.run(prometheus(handler).outside_probes()) is None


def test_outside_probes_are_components_with_uptime_and_unknown_while_prometheus_is_away():
    """A probed service is a component ``outside:<service>``: down while a probe fails, counted in the uptime
    history at each provider refresh; with Prometheus away it stays listed as unknown and is not counted."""
    answers: list = [[("video-api", "0")]]

    def handler(request: httpx.Request) -> httpx.Response:
        if "probe_success" not in request.url.params["query"]:
            return answering(request)
        if answers[0] is None:
            raise httpx.ConnectError("refused")
        return probes_answering(answers[0])(request)

    service = StatusService(Sources().collector(prometheus(handler)), WebSocketHub(), provider_interval=0.01)

    async def run_a_while() -> None:
        await service.start()
        await asyncio.sleep(0.2)
        await service.stop()

    asyncio.run(run_a_while())
    states = {c.name: c.state for c in service.collector.components()}
    assert states["outside:video-api"] == "down"
    ((up, total),) = [
        v for (name, _day), v in service.collector.uptime_counts.peek().items() if name == "outside:video-api"
    ]
    assert up == 0 and total >= 1

    answers[0] = None
    service.collector.uptime_counts.take()
    asyncio.run(run_a_while())
    assert {c.name: c.state for c in service.collector.components()}["outside:video-api"] == "unknown"
    assert not [name for name, _day in service.collector.uptime_counts.peek() if name == "outside:video-api"]


# -- uptime -------------------------------------------------------------------------------------------------------
def test_uptime_counts_reach_the_store_and_come_back_as_days(tmp_path):
    """Counts of two flushes add up per component and day; the 90 days end today, days without checks empty."""
    store = UptimeStore(f"sqlite:///{tmp_path / 'status.db'}")
    counts = UptimeCounts()
    counts.add(TODAY, {"redis": True, "database": True})
    counts.add(TODAY, {"redis": False, "database": True})
    store.add(counts.take())
    counts.add(TODAY, {"redis": True})
    counts.add(TODAY - dt.timedelta(days=2), {"redis": False})
    store.add(counts.take())
    assert counts.take() == {}
    stored = store.since(TODAY - dt.timedelta(days=89))
    days = uptime_days(stored, "redis", TODAY)
    assert len(days) == 90 and days[0].day == TODAY - dt.timedelta(days=89) and days[-1].day == TODAY
    assert [(d.checks_up, d.checks_total) for d in days[-3:]] == [(0, 1), (0, 0), (2, 3)]
    assert [(d.checks_up, d.checks_total) for d in uptime_days(stored, "database", TODAY)[-1:]] == [(2, 2)]
    store.close()


# -- the page and the live messages --------------------------------------------------------------------------------
class Sources:
    """What the collector reads, set by each test."""

    def __init__(self) -> None:
        self.report = {
            "status": "unhealthy",
            "checks": {
                "database": {"status": "healthy", "latency_ms": 1.5},
                "redis": {"status": "unhealthy", "error": "<script>alert(1)</script> refused"},
            },
        }
        self.alerts = [make_alert()]
        self.incidents = [
            {
                "id": 7,
                "rule": "RedisDown",
                "service": None,
                "summary": "Redis down",
                "opened_at": "t",
                "timeline": [{"at": "12:00", "kind": "opened", "text": "alert fired"}],
            }
        ]

    def collector(self, reader: ProviderMetricsReader | None = None) -> StatusCollector:
        async def incidents():
            return self.incidents

        async def silences():
            matchers = [{"name": "service", "value": "gemini", "operator": "="}]  # as GET /api/v1/silences lists it
            return [{"id": "s1", "matchers": matchers, "comment": "planned maintenance", "author": "ops"}]

        return StatusCollector(
            health_report=lambda: self.report,
            quota_views=lambda: [quota_view()],
            registry=ProviderRegistry(),
            metrics_reader=reader,
            active_alerts=lambda: self.alerts,
            open_incidents=incidents,
            silences=silences,
            clock=lambda: NOW,
        )


def test_the_page_shows_everything_escaped_and_unavailable_metrics_say_so():
    """Every check and provider, the alert with its trace link, the incident's timeline, the silence; the check's
    error text is escaped; with Prometheus away the providers' cells say unavailable."""
    summary = asyncio.run(Sources().collector().summary())
    page = render_status_page(summary, websocket_path=STATUS_WS_PATH)
    for name in ("database", "redis", "gemini", "stability", "d-id", "youtube"):
        assert f'id="component-{name}"' in page or f'id="provider-{name}"' in page
    assert 'id="component-redis" class="component" data-state="down"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert page.count(">unavailable<") == 4
    assert 'href="http://jaeger.local/trace/4bf92f3577b34da6a3ce929d0e0e4736"' in page
    assert f'href="{make_alert().logs_url}">logs</a>' in page
    assert "alert fired" in page and "planned maintenance" in page and '<code>service="gemini"</code>' in page
    assert summary.state == "down" and "http" not in page.split("<script>")[0].split("<body")[0]  # no CDN


@pytest.mark.parametrize(
    "alert, links",
    [
        (make_alert(), [make_alert().jaeger_url, make_alert().logs_url]),
        (make_alert(logs_url=None), [make_alert().jaeger_url]),  # no log store configured: no logs row
        (make_alert(trace_id=None, jaeger_url=None, logs_url=None), []),
    ],
)
def test_the_alert_page_links_the_trace_and_its_log_lines(alert, links):
    """The alert's page (where notifications lead) links its failing call's trace and log lines when it has them."""
    page = render_alert_page(
        alert, acknowledgement=None, silenced_by=[], ack_path="/ack", ack_url="http://m/ack", token_needed=False
    )
    assert [url for url in (make_alert().jaeger_url, make_alert().logs_url) if f'href="{url}"' in page] == links
    assert ("<th>Logs</th>" in page) is (alert.logs_url is not None)


def test_json_summary_route_and_page_route():
    """``/api/v1/status`` answers the model as JSON, ``/`` the HTML page."""
    sources = Sources()
    service = StatusService(sources.collector(prometheus(answering)), WebSocketHub())
    app = FastAPI()
    app.include_router(build_status_router(service))
    with TestClient(app) as client:
        body = client.get("/api/v1/status").json()
        page = client.get("/")
    assert body["state"] == "down"
    assert [(c["name"], c["state"]) for c in body["components"]] == [
        ("database", "up"),
        ("redis", "down"),
        ("outside:video-api", "up"),  # the blackbox exporter's probes of the API, from Prometheus
    ]
    assert [p["key"] for p in body["providers"]] == ["gemini", "stability", "d-id", "youtube"]
    assert body["providers"][0]["metrics"]["success_rate"] == 0.9
    assert body["providers"][0]["quota"]["reset_in_seconds"] == 3 * 3600
    assert len(body["components"][0]["uptime"]) == 90 and body["alerts"][0]["priority"] == "P0"
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="component-outside:video-api" class="component" data-state="up"' in page.text


def test_live_messages_carry_only_what_changed():
    """The first message has everything; nothing changed: none; a check turning down: that component alone;
    an alert resolving: the new alert list."""
    sources = Sources()
    hub = WebSocketHub()
    service = StatusService(sources.collector(), hub)
    first = service.publish_changes()
    assert first["type"] == "status" and len(first["components"]) == 2 and len(first["alerts"]) == 1
    assert service.publish_changes() is None
    sources.report = {"checks": {**sources.report["checks"], "database": {"status": "unhealthy", "error": "gone"}}}
    changed = service.publish_changes()
    assert [c["name"] for c in changed["components"]] == ["database"] and "alerts" not in changed
    sources.alerts = []
    assert service.publish_changes()["alerts"] == []


def test_only_clients_asking_for_status_get_status_messages():
    """A client of ``?include=status`` gets the status messages and the notifications; a plain client of the alerts
    WebSocket gets the notifications alone, as before."""
    alerts_hub, status_hub = WebSocketHub(), WebSocketHub()
    app = FastAPI()
    app.include_router(build_alerts_router(websocket_hub=alerts_hub, status_hub=status_hub))
    with TestClient(app) as client:
        with client.websocket_connect(ALERTS_WS_PATH) as plain, client.websocket_connect(STATUS_WS_PATH) as status:
            status_hub.publish(json.dumps({"type": "status", "state": "up"}))
            alerts_hub.publish(json.dumps({"id": "n1", "transition": "firing"}))
            assert plain.receive_json() == {"id": "n1", "transition": "firing"}
            assert status.receive_json()["type"] == "status" and status.receive_json()["id"] == "n1"


class Check:
    name = "redis"

    async def run(self) -> dict:
        return {"status": "unhealthy", "error": "refused"}


def test_uptime_is_counted_as_checks_run_and_a_failing_listener_does_not_reach_them():
    """Each health run counts every check for today; a listener that raises is logged, the report still comes."""
    service = StatusService(Sources().collector(), WebSocketHub())
    health = HealthService([Check()], meter_provider=None)

    def broken(_report):
        raise RuntimeError("listener bug")

    health.add_listener(broken)
    health.add_listener(service.on_health_report)
    for _ in range(2):
        assert asyncio.run(health.refresh())["status"] == "unhealthy"
    assert service.collector.uptime_counts.peek() == {("redis", TODAY): [0, 2]}

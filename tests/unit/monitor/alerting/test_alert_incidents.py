"""Alerts kept in the store, incidents in production, the service restored across a restart, the heartbeat."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.heartbeat import Heartbeat
from otel_monitor.monitor.alerting.incidents import IncidentStatus, IncidentStore, opens_incident
from otel_monitor.monitor.alerting.model import AlertState, Priority, Rule
from otel_monitor.monitor.alerting.router import build_alerts_router
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.service import AlertingService
from otel_monitor.monitor.alerting.state import AlertStore
from tests.support.alerts import Conditions, make_alert
from tests.support.receivers import Receiver
from tools.devstack.processes import free_port

T0 = dt.datetime(2025, 10, 20, 10, 30, tzinfo=dt.UTC)
REDIS_DOWN = Rule(
    name="RedisDown",
    priority=Priority.P0,
    source="check",
    expr="health.redis",
    for_seconds=0,
    clear_for_seconds=0,
    interval_seconds=1,
    error_code="REDIS_CONNECTION_FAILED",
    labels={"service": "redis"},
    summary="Redis is unreachable",
    action_required="Restart Redis",
    runbook="Celery stops while Redis is down.",
)
SLOW_QUOTA = Rule(
    name="QuotaLow",
    priority=Priority.P1,
    source="check",
    expr="quota.d-id",
    for_seconds=30,
    clear_for_seconds=0,
    interval_seconds=1,
    error_code="QUOTA_LOW",
    labels={"service": "d-id"},
    summary="Quota low",
    action_required="Top up",
    runbook="-",
)
DELIVERY = DeliveryConfig.model_validate(
    {"channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}}, "routing": {"P0": ["hook"]}}
)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def service_on(
    url: str, conditions: Conditions, *, environment: str = "development", rules=(REDIS_DOWN,)
) -> AlertingService:
    outbox = Outbox(url, clock=lambda: T0)
    return AlertingService(
        list(rules),
        {"check": conditions},
        outbox,
        Dispatcher.from_config(outbox, DELIVERY, {}),
        DELIVERY,
        clock=lambda: T0,
        state=AlertStore(url, clock=lambda: T0),
        incidents=IncidentStore(url, clock=lambda: T0),
        environment=environment,
    )


def transitions(outbox: Outbox) -> list[str]:
    return [entry.notification.transition for entry in outbox.entries()]


# -- the alert store ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "filters, expected",
    [
        ({}, ["gemini-firing", "d-id-resolved", "gemini-p1-pending"]),
        ({"priority": Priority.P0}, ["gemini-firing", "d-id-resolved"]),
        ({"service": "d-id"}, ["d-id-resolved"]),
        ({"state": AlertState.RESOLVED}, ["d-id-resolved"]),
        ({"state": AlertState.PENDING, "priority": Priority.P0}, []),
        ({"limit": 1}, ["gemini-firing"]),
    ],
)
def test_history_filters_active_and_resolved(filters, expected):
    """history() lists active and resolved alerts, most recently changed first, filtered by every filter given."""
    clock = iter([at(0), at(1), at(2), at(3)])
    store = AlertStore(clock=lambda: next(clock))
    store.upsert(make_alert(AlertState.PENDING, fingerprint="gemini-p1-pending", priority=Priority.P1))
    store.upsert(make_alert(AlertState.FIRING, fingerprint="d-id-resolved", labels={"service": "d-id"}))
    store.upsert(make_alert(AlertState.RESOLVED, fingerprint="d-id-resolved", labels={"service": "d-id"}))
    store.upsert(make_alert(AlertState.FIRING, fingerprint="gemini-firing"))
    assert [a.fingerprint for a in store.history(**filters)] == expected


def test_load_active_round_trips_pending_and_firing_only():
    """load_active() gives back pending and firing alerts with every field; resolved and discarded ones stay out."""
    store = AlertStore()
    firing = make_alert(AlertState.FIRING, fingerprint="fp-firing", inhibited=("ApiStreak",), value=3.0)
    store.upsert(firing)
    store.upsert(make_alert(AlertState.PENDING, fingerprint="fp-pending"))
    store.upsert(make_alert(AlertState.PENDING, fingerprint="fp-dropped"))
    store.discard(make_alert(AlertState.PENDING, fingerprint="fp-dropped"))
    store.upsert(make_alert(AlertState.RESOLVED, fingerprint="fp-resolved"))
    active = {a.fingerprint: a for a in store.load_active()}
    assert set(active) == {"fp-firing", "fp-pending"}
    assert active["fp-firing"] == firing


def test_same_alert_firing_again_is_a_new_episode():
    """An alert that resolved and fires again from a later start is a second row; the first stays resolved."""
    store = AlertStore()
    store.upsert(make_alert(AlertState.RESOLVED, starts_at=at(0), ends_at=at(5)))
    store.upsert(make_alert(AlertState.FIRING, starts_at=at(60)))
    assert [(a.state, a.starts_at) for a in store.history()] == [
        (AlertState.FIRING, at(60)),
        (AlertState.RESOLVED, at(0)),
    ]


# -- incidents ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "environment, priority, opens",
    [
        ("production", Priority.P0, True),
        ("production", Priority.P1, False),
        ("staging", Priority.P0, False),
        ("development", Priority.P0, False),
    ],
)
def test_opens_incident_for_p0_in_production_only(environment, priority, opens):
    """Only a P0 in production opens an incident."""
    assert opens_incident(environment, make_alert(priority=priority)) is opens


def test_incident_opens_once_and_resolves_at_the_alert_end():
    """A second open for the same firing alert is a no-op; resolving stamps the alert's end; status filters."""
    incidents = IncidentStore()
    opened = incidents.open(make_alert(starts_at=at(0)))
    assert opened is not None and opened.status is IncidentStatus.OPEN and opened.opened_at == at(0)
    assert incidents.open(make_alert(starts_at=at(0))) is None
    resolved = incidents.resolve_for(make_alert(AlertState.RESOLVED, starts_at=at(0), ends_at=at(42)))
    assert (resolved.id, resolved.status, resolved.closed_at) == (opened.id, IncidentStatus.RESOLVED, at(42))
    assert incidents.resolve_for(make_alert(AlertState.RESOLVED)) is None
    assert incidents.incidents(status=IncidentStatus.OPEN) == []
    assert [i.id for i in incidents.incidents(status=IncidentStatus.RESOLVED)] == [opened.id]


# -- the service over the stores ------------------------------------------------------------------------------------
def test_restart_while_firing_does_not_announce_again(tmp_path):
    """A service restarted on the same store while an alert fires queues no second firing, then one resolved."""
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    conditions = Conditions()

    async def scenario():
        first = service_on(url, conditions)
        await first.restore()
        conditions.holding.add("RedisDown")
        await first.evaluate_once(at(0))
        await first.stop()

        second = service_on(url, conditions)
        await second.restore()
        assert [(a.rule, a.state) for a in second.alerts()] == [("RedisDown", AlertState.FIRING)]
        await second.evaluate_once(at(1))
        assert transitions(second.outbox) == ["firing"]
        conditions.holding.clear()
        await second.evaluate_once(at(2))
        assert transitions(second.outbox) == ["firing", "resolved"]
        history = await second.history()
        await second.stop()
        return history

    history = asyncio.run(scenario())
    assert [(a.rule, a.state) for a in history] == [("RedisDown", AlertState.RESOLVED)]


def test_pending_alerts_are_kept_and_dropped_with_their_condition(tmp_path):
    """A pending alert is stored after the pass that sees it, and removed when its condition clears before firing."""
    conditions = Conditions()

    async def scenario():
        service = service_on(f"sqlite:///{tmp_path / 'alerts.db'}", conditions, rules=(SLOW_QUOTA,))
        conditions.holding.add("QuotaLow")
        await service.evaluate_once(at(0))
        pending = [(a.rule, a.state) for a in await service.history()]
        conditions.holding.clear()
        await service.evaluate_once(at(2))
        after = await service.history()
        await service.stop()
        return pending, after

    pending, after = asyncio.run(scenario())
    assert pending == [("QuotaLow", AlertState.PENDING)]
    assert after == []


@pytest.mark.parametrize(
    "environment, incidents", [("production", [("resolved", "REDIS_CONNECTION_FAILED")]), ("staging", [])]
)
def test_service_opens_and_closes_incidents_in_production(tmp_path, environment, incidents):
    """In production the P0 firing opens an incident (open while it fires) and its resolution closes it."""
    conditions = Conditions()

    async def scenario():
        service = service_on(f"sqlite:///{tmp_path / 'alerts.db'}", conditions, environment=environment)
        conditions.holding.add("RedisDown")
        await service.evaluate_once(at(0))
        while_firing = [i.status.value for i in await service.incidents()]
        conditions.holding.clear()
        await service.evaluate_once(at(1))
        final = [(i.status.value, i.error_code) for i in await service.incidents()]
        await service.stop()
        return while_firing, final

    while_firing, final = asyncio.run(scenario())
    assert while_firing == ["open" for _ in incidents]
    assert final == incidents


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/v1/alerts", {"state": "exploded"}),
        ("/api/v1/alerts", {"priority": "P9"}),
        ("/api/v1/alerts", {"limit": "0"}),
        ("/api/v1/incidents", {"status": "ajar"}),
    ],
)
def test_bad_filter_values_are_422(path, params):
    """Unknown filter values are rejected with FastAPI's 422, naming the query parameter."""
    app = FastAPI()
    app.include_router(build_alerts_router())
    response = TestClient(app).get(path, params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_alerts_off_answers_empty_lists():
    """Without alerting both endpoints answer, with nothing in them."""
    app = FastAPI()
    app.include_router(build_alerts_router())
    client = TestClient(app)
    assert client.get("/api/v1/alerts").json() == {"alerts": []}
    assert client.get("/api/v1/incidents", params={"status": "open"}).json() == {"incidents": []}


# -- the heartbeat --------------------------------------------------------------------------------------------------
class _GetCounter:
    """A local watcher counting GET pings."""

    def __init__(self) -> None:
        self.hits = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                counter.hits += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _beat_for(heartbeat: Heartbeat, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(heartbeat.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)


def test_heartbeat_gets_the_watcher_on_its_interval():
    """GET pings go out at once and then every interval."""
    watcher = _GetCounter()

    async def scenario():
        async with httpx.AsyncClient() as client:
            await _beat_for(Heartbeat(watcher.url, client=client, interval_seconds=0.1), 0.55)

    try:
        asyncio.run(scenario())
        assert watcher.hits >= 3
    finally:
        watcher.close()


def test_heartbeat_posts_and_survives_a_dead_watcher(caplog):
    """POST pings reach a live receiver; a dead one is logged once, never raised, and pings resume when it is back."""
    receiver = Receiver()
    url = f"{receiver.url}/beat"

    async def scenario():
        async with httpx.AsyncClient() as client:
            heartbeat = Heartbeat(url, client=client, interval_seconds=0.05, method="POST", timeout_seconds=1)
            await _beat_for(heartbeat, 0.3)  # nobody listening yet
            receiver.start()
            await _beat_for(heartbeat, 0.3)

    with caplog.at_level(logging.INFO, logger="otel_monitor.alerting.heartbeat"):
        try:
            asyncio.run(scenario())
        finally:
            receiver.stop()
    assert len(receiver.requests) >= 2
    assert {r["path"] for r in receiver.requests} == {"/beat"}
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("Heartbeat ping failed") == 1
    assert messages.count("Heartbeat ping works again") == 1


def test_p1_alerts_of_a_period_go_out_as_one_digest(tmp_path):
    """P0 transitions are queued at once; P1 ones wait for their period's digest: several P1 alerts, one
    notification."""
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    delivery = DeliveryConfig.model_validate(
        {
            "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
            "routing": {"P0": ["hook"], "P1": ["hook"]},
        }
    )
    now = [at(0)]
    p1_rules = [
        Rule(
            name=f"Slow{i}",
            priority=Priority.P1,
            source="check",
            expr="health.redis",
            for_seconds=0,
            clear_for_seconds=0,
            interval_seconds=1,
            error_code=f"SLOW_{i}",
            labels={"service": f"s{i}"},
            summary=f"slow {i}",
            action_required="look",
            runbook="-",
        )
        for i in range(3)
    ]
    conditions = Conditions()
    outbox = Outbox(url, clock=lambda: now[0])
    service = AlertingService(
        [REDIS_DOWN, *p1_rules],
        {"check": conditions},
        outbox,
        Dispatcher.from_config(outbox, delivery, {}),
        delivery,
        clock=lambda: now[0],
        state=AlertStore(url, clock=lambda: now[0]),
        incidents=IncidentStore(url, clock=lambda: now[0]),
    )

    async def scenario():
        conditions.holding = {"RedisDown", "Slow0", "Slow1", "Slow2"}
        await service.evaluate_once(at(0))
        immediate = [e.notification.alert.rule for e in outbox.entries()]
        now[0] = at(3600)  # the digest period closes
        sent = await service.digest.flush()
        return immediate, sent

    immediate, sent = asyncio.run(scenario())
    assert immediate == ["RedisDown"]  # only the P0 went out at once
    assert len(sent) == 1 and len(sent[0].digest) == 3
    assert len(outbox.entries()) == 2  # the P0 and ONE digest

"""The silences API: added (201), listed by state with open maintenance windows, read, expired (DELETE); bad input
answers 4xx JSON naming the field; alerting off answers 409 or an empty list."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otel_monitor.monitor.alerting.silences.gate import SilenceGate
from otel_monitor.monitor.alerting.silences.router import SILENCES_PATH, build_silences_router
from otel_monitor.monitor.alerting.silences.store import SilenceStore
from otel_monitor.monitor.alerting.silences.windows import MaintenanceWindow
from otel_monitor.monitor.alerting.state import AlertStore
from tests.support.clocks import Clock

T0 = dt.datetime(2026, 1, 14, 10, 0, tzinfo=dt.UTC)
GEMINI = [{"name": "service", "value": "gemini", "operator": "="}]
WINDOW = MaintenanceWindow(name="nightly", matchers=("service=stability",), start="09:00", end="11:00")


@pytest.fixture
def client(tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    clock = Clock(T0)
    gate = SilenceGate(
        SilenceStore(url, clock=clock), AlertStore(url, clock=clock), current_alerts=list, windows=[WINDOW], clock=clock
    )
    app = FastAPI()
    app.include_router(build_silences_router())
    app.state.alerting = SimpleNamespace(silences=gate)
    with TestClient(app) as test_client:
        yield test_client
    gate.store.close()


def silence(**fields) -> dict:
    return {"matchers": GEMINI, "ends_at": "2026-01-14T12:00:00Z", "comment": "provider maintenance", **fields}


def test_add_read_list_and_expire(client):
    """POST answers 201 with the silence (active from now); GET reads it; DELETE expires it; lists by state."""
    added = client.post(SILENCES_PATH, json=silence(author="ana"))
    assert added.status_code == 201
    body = added.json()
    assert (body["kind"], body["state"], body["author"], body["matchers"]) == ("silence", "active", "ana", GEMINI)
    assert dt.datetime.fromisoformat(body["starts_at"]) == T0
    assert client.get(f"{SILENCES_PATH}/{body['id']}").json() == body

    listed = client.get(SILENCES_PATH).json()["silences"]
    assert [(s["kind"], s["id"]) for s in listed] == [("maintenance_window", WINDOW.id), ("silence", body["id"])]
    assert listed[0]["matchers"] == [{"name": "service", "value": "stability", "operator": "="}]

    expired = client.delete(f"{SILENCES_PATH}/{body['id']}")
    assert (expired.status_code, expired.json()["state"]) == (200, "expired")
    assert [s["id"] for s in client.get(SILENCES_PATH, params={"state": "expired"}).json()["silences"]] == [body["id"]]
    assert [s["kind"] for s in client.get(SILENCES_PATH, params={"state": "active"}).json()["silences"]] == [
        "maintenance_window"
    ]
    assert client.get(SILENCES_PATH, params={"state": "pending"}).json() == {"silences": []}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (silence(matchers=[]), 422, "matchers"),
        (silence(matchers=[{"name": "rule", "value": "(", "operator": "=~"}]), 422, "not a regular expression"),
        (silence(matchers=[{"name": "rule", "value": "x", "operator": "=="}]), 422, "operator"),
        (silence(matchers=[{"name": "1rule", "value": "x"}]), 422, "name"),
        (silence(starts_at="2026-01-14T13:00:00Z"), 422, "ends_at"),
        (silence(ends_at="2026-01-14T09:00:00Z"), 422, "ends_at"),
        (silence(comment=""), 422, "comment"),
        ({"matchers": GEMINI, "comment": "c"}, 422, "ends_at"),
        (silence(until="soon"), 422, "until"),
    ],
)
def test_bad_input_answers_4xx_naming_the_field(client, body, status, field):
    """Each mistake answers a 4xx JSON body that names the field."""
    answer = client.post(SILENCES_PATH, json=body)
    assert answer.status_code == status
    assert field in str(answer.json()["detail"])


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("DELETE", "/nope")])
def test_unknown_silence_answers_404(client, method, path):
    """Reading or expiring an unknown id: 404 JSON."""
    answer = client.request(method, SILENCES_PATH + path)
    assert (answer.status_code, answer.json()) == (404, {"detail": "no silence 'nope'"})


def test_alerting_off():
    """Without alerting: nothing listed; adding or expiring answers 409 JSON."""
    app = FastAPI()
    app.include_router(build_silences_router())
    app.state.alerting = None
    with TestClient(app) as client:
        assert client.get(SILENCES_PATH).json() == {"silences": []}
        assert client.post(SILENCES_PATH, json=silence()).status_code == 409
        assert client.delete(f"{SILENCES_PATH}/x").status_code == 409
        assert client.get(f"{SILENCES_PATH}/x").status_code == 404

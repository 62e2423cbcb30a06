"""The acknowledgement, escalation and incident-timeline stores on SQLite and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from otel_monitor.monitor.alerting.acknowledgement import AcknowledgementStore
from otel_monitor.monitor.alerting.escalation import EscalationState, EscalationStore
from otel_monitor.monitor.alerting.incidents import IncidentEventKind, IncidentStatus, IncidentStore, UnknownIncident
from otel_monitor.monitor.alerting.model import AlertState
from tests.support.alerts import make_alert
from tests.support.clocks import Clock

T0 = dt.datetime(2025, 10, 20, 10, 30, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def stores(store_url, clock):
    """The three stores on one database and the test clock; closed with their threads after the test."""
    opened = (
        AcknowledgementStore(store_url, clock=clock),
        EscalationStore(store_url, clock=clock),
        IncidentStore(store_url, clock=clock),
    )
    yield opened
    for store in opened:
        store.close()
        store.executor.shutdown()


def test_acknowledgement_stands_for_its_episode_until_replaced_or_ended(stores, clock):
    """An acknowledgement stands for its alert episode only; a newer one replaces it; ended, none stands."""
    acks, _, _ = stores
    alert = make_alert(starts_at=at(0))
    first = acks.acknowledge(alert, by="alice", comment="on it", until=at(600))
    assert acks.standing([alert]) == {alert.fingerprint: first}
    assert acks.standing([make_alert(starts_at=at(5000))]) == {}  # the next episode: not acknowledged
    clock.advance(60)
    second = acks.acknowledge(alert, by="bob")
    assert acks.standing([alert]) == {alert.fingerprint: second}
    assert (second.by, second.at, second.until) == ("bob", at(60), None)
    acks.end(second, at(120))
    assert acks.standing([alert]) == {}


def test_escalation_state_round_trips_per_episode(stores):
    """What was sent for an episode is written and read back; another episode has none."""
    _, escalations, _ = stores
    alert = make_alert(starts_at=at(0))
    assert escalations.get(alert) is None
    state = EscalationState(alert.fingerprint, at(0), 2, at(3600), at(0), 1, ("pager",))
    escalations.put(state)
    escalations.put(state)  # written again: still one row
    assert escalations.get(alert) == state
    assert escalations.channels_reached(alert) == ("pager",)
    assert escalations.channels_reached(make_alert(starts_at=at(9000))) == ()


def test_incident_goes_open_acknowledged_resolved_with_its_timeline(stores, clock):
    """Each step and note is on the timeline in order; the first acknowledgement's time stays; a stale one reopens;
    a note on an unknown incident raises."""
    _, _, incidents = stores
    alert = make_alert(starts_at=at(0))
    opened = incidents.open(alert)
    assert opened is not None and opened.status is IncidentStatus.OPEN
    clock.advance(300)
    assert incidents.record_for(alert, IncidentEventKind.REPEATED, "repeat 1 sent to hook")
    acked = incidents.acknowledge_for(alert, by="alice", text="on it")
    assert acked is not None and (acked.status, acked.time_to_acknowledge) == (IncidentStatus.ACKNOWLEDGED, 300.0)
    clock.advance(300)
    reopened = incidents.reopen_for(alert, text="acknowledgement by alice expired")
    assert reopened is not None and (reopened.status, reopened.acknowledged_at) == (IncidentStatus.OPEN, at(300))
    incidents.note(opened.id, author="bob", text="rotating the key")
    with pytest.raises(UnknownIncident):
        incidents.note(opened.id + 1, author="bob", text="nowhere")
    resolved = incidents.resolve_for(make_alert(AlertState.RESOLVED, starts_at=at(0), ends_at=at(900)))
    assert resolved is not None and resolved.time_to_resolve == 900.0
    assert not incidents.record_for(alert, IncidentEventKind.REPEATED, "after the end")
    timeline = incidents.get(opened.id).timeline
    assert [(e.at, e.kind.value, e.author) for e in timeline] == [
        (at(0), "opened", None),
        (at(0), "alert_firing", None),
        (at(300), "repeated", None),
        (at(300), "acknowledged", "alice"),
        (at(600), "acknowledgement_expired", None),
        (at(600), "note", "bob"),
        (at(900), "alert_resolved", None),
        (at(900), "resolved", None),
    ]
    assert [i.status for i in incidents.incidents(status=IncidentStatus.RESOLVED)] == [IncidentStatus.RESOLVED]
    with pytest.raises(UnknownIncident):
        incidents.get(opened.id + 1)


def test_unresolved_incidents_come_with_their_timelines(stores, clock):
    """Open and acknowledged incidents, newest first, each with its own timeline; a resolved one is left out."""
    _, _, incidents = stores
    first, second, third = (make_alert(starts_at=at(seconds), fingerprint=f"fp{seconds}") for seconds in (0, 1, 2))
    for alert in (first, second, third):
        incidents.open(alert)
    clock.advance(300)
    incidents.acknowledge_for(second, by="alice", text="on it")
    incidents.resolve_for(make_alert(AlertState.RESOLVED, starts_at=at(0), ends_at=at(900), fingerprint="fp0"))
    unresolved = incidents.unresolved_with_timelines()
    assert [(i.fingerprint, i.status) for i in unresolved] == [
        ("fp2", IncidentStatus.OPEN),
        ("fp1", IncidentStatus.ACKNOWLEDGED),
    ]
    assert [[e.kind.value for e in i.timeline] for i in unresolved] == [
        ["opened", "alert_firing"],
        ["opened", "alert_firing", "acknowledged"],
    ]
    assert [i.timeline for i in unresolved] == [incidents.get(i.id).timeline for i in unresolved]
    assert incidents.unresolved_with_timelines(limit=1)[0].fingerprint == "fp2"

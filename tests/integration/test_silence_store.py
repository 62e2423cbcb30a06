"""The silences table on SQLite and the real PostgreSQL: added, read back, listed by state, expired; the held
firing of an alert episode kept across a reopening."""

from __future__ import annotations

import datetime as dt

from otel_monitor.monitor.alerting.silences.matchers import parse_matcher
from otel_monitor.monitor.alerting.silences.model import SilenceState
from otel_monitor.monitor.alerting.silences.store import SilenceStore
from otel_monitor.monitor.alerting.state import AlertStore
from tests.support.alerts import make_alert
from tests.support.clocks import Clock

T0 = dt.datetime(2026, 1, 14, 10, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def test_silences_added_listed_by_state_and_expired(store_url):
    """Pending, active and expired silences read back as added, each listed under its state; expiring an active
    one ends it now, a pending one before it starts, an unknown id is None."""
    clock = Clock(T0)
    store = SilenceStore(store_url, clock=clock)
    matchers = (parse_matcher("service=gemini"), parse_matcher("rule=~Gemini.*"))
    active = store.add(matchers, starts_at=T0 - HOUR, ends_at=T0 + HOUR, comment="upgrade", author="ana")
    pending = store.add(matchers[:1], starts_at=T0 + HOUR, ends_at=T0 + 2 * HOUR, comment="later", author="bo")
    ended = store.add(matchers[:1], starts_at=T0 - 2 * HOUR, ends_at=T0 - HOUR, comment="past", author="cy")
    try:
        assert store.get(active.id) == active
        assert store.get(active.id).matchers == matchers
        assert [s.id for s in store.silences(state=SilenceState.ACTIVE)] == [active.id]
        assert [s.id for s in store.silences(state=SilenceState.PENDING)] == [pending.id]
        assert [s.id for s in store.silences(state=SilenceState.EXPIRED)] == [ended.id]
        assert {s.id for s in store.silences()} == {active.id, pending.id, ended.id}
        assert {s.id for s in store.unexpired()} == {active.id, pending.id}

        clock.advance(60)
        expired = store.expire(active.id)
        assert expired.ends_at == clock.now and expired.state_at(clock.now) is SilenceState.EXPIRED
        expired_pending = store.expire(pending.id)
        assert expired_pending.starts_at == expired_pending.ends_at == clock.now
        assert store.expire(ended.id).ends_at == T0 - HOUR  # already over: left as it was
        assert store.expire("no-such-silence") is None
        assert store.unexpired() == []
    finally:
        store.close()


def test_held_firing_is_kept_on_the_alert_episode(store_url):
    """An episode marked held is listed by ``load_held`` until it is marked released; an update leaves the mark."""
    store = AlertStore(store_url, clock=Clock(T0))
    alert = make_alert()
    try:
        store.upsert(alert, firing_held=True)
        store.upsert(alert)
        assert store.load_held() == [alert.fingerprint]
        store.upsert(alert, firing_held=False)
        assert store.load_held() == []
    finally:
        store.close()

"""Silences in the alerting pipeline on an injected clock: held firings are kept, not sent; released once when the
silence ends (expired or over) if the alert still fires; a resolution goes out only if the firing did; what was held
survives a restart; the alerts gauge shows silenced alerts."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from otel_monitor.monitor.alerting.delivery.digest import DigestStore
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import Outbox
from otel_monitor.monitor.alerting.metrics import AlertingMetricNames, AlertingMetrics
from otel_monitor.monitor.alerting.model import Priority, Rule
from otel_monitor.monitor.alerting.notification import notification_id
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.monitor.alerting.service import AlertingService
from otel_monitor.monitor.alerting.silences.matchers import parse_matcher
from otel_monitor.monitor.alerting.silences.store import SilenceStore
from otel_monitor.monitor.alerting.silences.windows import MaintenanceWindow
from otel_monitor.monitor.alerting.state import AlertStore
from otel_monitor.testing import in_memory_telemetry
from tests.support.alerts import Conditions
from tests.support.clocks import Clock

T0 = dt.datetime(2026, 1, 14, 10, 0, tzinfo=dt.UTC)
STEP = 5  # seconds between passes: the P0 cadence
RULE = Rule(
    name="GeminiInvalidApiKey",
    priority=Priority.P0,
    source="check",
    expr="provider.gemini",
    for_seconds=0,
    clear_for_seconds=0,
    error_code="GEMINI_INVALID_API_KEY",
    labels={"service": "gemini"},
    summary="API Key Invalid",
    action_required="Check GEMINI_API_KEY in environment variables",
    runbook="r",
)
DELIVERY = DeliveryConfig.model_validate(
    {"channels": {"ops": {"type": "console"}}, "routing": {"P0": ["ops"], "P1": ["ops"], "P2": ["ops"]}}
)
GEMINI = (parse_matcher("service=gemini"),)


class Monitor:
    """An alerting service on a SQLite file, its condition and clock driven by the test; nothing delivered (the
    outbox shows what was queued)."""

    def __init__(
        self, url: str, clock: Clock, windows: tuple[MaintenanceWindow, ...] = (), metrics=None, rule: Rule = RULE
    ) -> None:
        self.clock = clock
        self.conditions = Conditions()
        self.outbox = Outbox(url, clock=clock)
        self.silences = SilenceStore(url, clock=clock)
        self.service = AlertingService(
            [rule],
            {"check": self.conditions},
            self.outbox,
            Dispatcher.from_config(self.outbox, DELIVERY, {}),
            DELIVERY,
            clock=clock,
            state=AlertStore(url, clock=clock),
            digests=DigestStore(url, clock=clock),
            silences=self.silences,
            maintenance_windows=windows,
            metrics=metrics,
        )

    async def passes(self, count: int = 1) -> None:
        for _ in range(count):
            await self.service.evaluate_once(self.clock.now)
            self.clock.advance(STEP)

    def silence(self, minutes: float = 60):
        now = self.clock.now
        silence = self.silences.add(
            GEMINI, starts_at=now, ends_at=now + dt.timedelta(minutes=minutes), comment="maintenance", author="t"
        )
        self.service.silences.invalidate()
        return silence

    def expire(self, silence_id: str) -> None:
        self.silences.expire(silence_id)
        self.service.silences.invalidate()

    def queued(self) -> list[tuple[str, str]]:
        """(transition, notification id) of each notification queued."""
        return [(entry.notification.transition, entry.notification.id) for entry in self.outbox.entries()]


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'alerts.db'}"


@pytest.mark.asyncio
async def test_held_firing_goes_out_once_when_the_silence_is_expired(url, clock):
    """Silenced: evaluated, stored and marked silenced, nothing queued; expired while it fires: queued once, with
    the id it would have had; later passes add nothing."""
    monitor = Monitor(url, clock)
    silence = monitor.silence()
    monitor.conditions.holding.add(RULE.name)
    await monitor.passes(3)
    (alert,) = monitor.service.alerts()
    assert monitor.queued() == []
    assert monitor.service.silences.holding(alert) == [silence.id]
    assert [a.fingerprint for a in await monitor.service.history()] == [alert.fingerprint]

    monitor.expire(silence.id)
    await monitor.passes(3)
    assert monitor.queued() == [("firing", notification_id(alert, "firing"))]
    await monitor.service.stop()


@pytest.mark.asyncio
async def test_held_firing_goes_out_when_the_silence_runs_out(url, clock):
    """A silence that ends by time releases within a pass of its end."""
    monitor = Monitor(url, clock)
    monitor.silence(minutes=1)
    monitor.conditions.holding.add(RULE.name)
    await monitor.passes(60 // STEP - 1)
    assert monitor.queued() == []
    await monitor.passes(3)
    assert [transition for transition, _ in monitor.queued()] == ["firing"]
    await monitor.service.stop()


@pytest.mark.asyncio
async def test_resolved_goes_out_under_a_silence_when_the_firing_did(url, clock):
    """Fired and notified, then silenced, then resolved: the resolution is queued all the same."""
    monitor = Monitor(url, clock)
    monitor.conditions.holding.add(RULE.name)
    await monitor.passes()
    monitor.silence()
    await monitor.passes()
    monitor.conditions.holding.clear()
    await monitor.passes(2)
    assert [transition for transition, _ in monitor.queued()] == ["firing", "resolved"]
    await monitor.service.stop()


@pytest.mark.asyncio
async def test_held_then_resolved_under_the_silence_sends_nothing(url, clock, caplog):
    """Held, then resolved while still silenced: nothing is queued, then or when the silence ends; it is logged."""
    monitor = Monitor(url, clock)
    silence = monitor.silence()
    monitor.conditions.holding.add(RULE.name)
    await monitor.passes(2)
    monitor.conditions.holding.clear()
    with caplog.at_level(logging.INFO):
        await monitor.passes(2)
    monitor.expire(silence.id)
    await monitor.passes(2)
    assert monitor.queued() == []
    assert any("resolved before its silence ended" in record.getMessage() for record in caplog.records)
    assert monitor.service.silences.held == frozenset()
    await monitor.service.stop()


@pytest.mark.asyncio
async def test_held_firing_survives_a_restart(url, clock):
    """Held, the monitor restarted (a new service on the same store), the silence expired: released once."""
    first = Monitor(url, clock)
    silence = first.silence()
    first.conditions.holding.add(RULE.name)
    await first.passes(2)
    await first.service.stop()

    second = Monitor(url, clock)
    second.conditions.holding.add(RULE.name)
    await second.service.restore()
    await second.passes(2)
    assert second.queued() == []
    second.expire(silence.id)
    await second.passes(2)
    assert [transition for transition, _ in second.queued()] == ["firing"]
    await second.service.stop()


@pytest.mark.asyncio
async def test_maintenance_window_holds_then_releases_and_logs_start_and_end(url, clock, caplog):
    """A window open 10:00-10:01 UTC holds the firing; it goes out once the window closes; start and end logged."""
    window = MaintenanceWindow(name="gemini-upgrade", matchers=("service=gemini",), start="10:00", end="10:01")
    monitor = Monitor(url, clock, windows=(window,))
    monitor.conditions.holding.add(RULE.name)
    with caplog.at_level(logging.INFO):
        await monitor.passes(60 // STEP)
        assert monitor.queued() == []
        await monitor.passes(2)
    assert [transition for transition, _ in monitor.queued()] == ["firing"]
    lines = [(r.getMessage(), getattr(r, "window", None)) for r in caplog.records if "Maintenance" in r.getMessage()]
    assert lines == [("Maintenance window started", "gemini-upgrade"), ("Maintenance window ended", "gemini-upgrade")]
    await monitor.service.stop()


@pytest.mark.asyncio
async def test_alerts_gauge_shows_a_silenced_alert_as_silenced(url, clock):
    """The alerts gauge's state label reads ``silenced`` while a silence holds a firing alert, ``firing`` after."""
    captured = in_memory_telemetry()
    monitor = Monitor(url, clock, metrics=AlertingMetrics(captured.meter_provider, clock=clock))
    silence = monitor.silence()
    monitor.conditions.holding.add(RULE.name)
    await monitor.passes()
    states = {dict(series)["state"]: value for series, value in captured.points(AlertingMetricNames.ALERTS).items()}
    assert states == {"silenced": 1}
    monitor.expire(silence.id)
    await monitor.passes()
    states = {dict(series)["state"]: value for series, value in captured.points(AlertingMetricNames.ALERTS).items()}
    assert states == {"silenced": 0, "firing": 1}
    await monitor.service.stop()


@pytest.mark.asyncio
async def test_held_p1_is_kept_out_of_the_digest_until_released(url, clock):
    """A silenced P1 is not put in its period's digest; once the silence is expired it is, once."""
    monitor = Monitor(url, clock, rule=RULE.model_copy(update={"priority": Priority.P1, "interval_seconds": STEP}))
    silence = monitor.silence()
    monitor.conditions.holding.add(RULE.name)
    await monitor.passes(3)
    assert monitor.service.digest.pending() == 0
    monitor.expire(silence.id)
    await monitor.passes(3)
    assert monitor.service.digest.pending() == 1
    assert monitor.queued() == []
    await monitor.service.stop()

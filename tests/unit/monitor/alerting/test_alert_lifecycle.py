"""The alert state machine and inhibition, as pure functions over tables."""

from __future__ import annotations

import datetime as dt

import pytest

from otel_monitor.monitor.alerting.evaluate.inhibition import inhibit
from otel_monitor.monitor.alerting.evaluate.lifecycle import advance, render_summary
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority, Rule, fingerprint

T0 = dt.datetime(2025, 10, 20, 10, 0, tzinfo=dt.UTC)


def rule(name="redis_down", for_seconds=0.0, clear_for_seconds=60.0, inhibited_by=(), labels=None) -> Rule:
    return Rule(
        name=name,
        priority=Priority.P0,
        expr="up == 0",
        for_seconds=for_seconds,
        clear_for_seconds=clear_for_seconds,
        error_code="REDIS_CONNECTION_FAILED",
        labels=labels or {},
        summary="s",
        action_required="a",
        runbook="r",
        inhibited_by=inhibited_by,
    )


def run(steps, r: Rule):
    """Feeds (seconds, active) steps through advance; returns [(state or None, transition)] after each."""
    alert, out = None, []
    for seconds, active in steps:
        alert, transition = advance(alert, active, r, T0 + dt.timedelta(seconds=seconds), value=1.0 if active else None)
        out.append((alert.state.value if alert else None, transition))
    return out


@pytest.mark.parametrize(
    "for_seconds, clear_for, steps, expected",
    [
        # for 0: fires at once; stays clear 60 s: resolves once.
        (
            0,
            60,
            [(0, True), (5, True), (10, False), (69, False), (70, False), (75, False)],
            [
                ("firing", "firing"),
                ("firing", None),
                ("firing", None),
                ("firing", None),
                ("resolved", "resolved"),
                ("resolved", None),
            ],
        ),
        # for 30: pending until 30 s of holding.
        (
            30,
            0,
            [(0, True), (15, True), (29, True), (30, True), (35, False)],
            [("pending", None), ("pending", None), ("pending", None), ("firing", "firing"), ("resolved", "resolved")],
        ),
        # pending that clears is dropped silently; a later return starts a new pending period.
        (
            30,
            0,
            [(0, True), (20, False), (25, True), (50, True), (55, True)],
            [("pending", None), (None, None), ("pending", None), ("pending", None), ("firing", "firing")],
        ),
        # flapping: clears and returns within clear_for -> stays firing, one notification, clear timer restarts.
        (
            0,
            60,
            [(0, True), (10, False), (50, True), (55, False), (100, False), (115, False)],
            [
                ("firing", "firing"),
                ("firing", None),
                ("firing", None),
                ("firing", None),
                ("firing", None),
                ("resolved", "resolved"),
            ],
        ),
        # clear_for 0: resolves on the first clear evaluation.
        (0, 0, [(0, True), (5, False)], [("firing", "firing"), ("resolved", "resolved")]),
        # never active: nothing at all.
        (0, 60, [(0, False), (5, False)], [(None, None), (None, None)]),
    ],
)
def test_lifecycle_table(for_seconds, clear_for, steps, expected):
    """pending -> firing after for_seconds, resolved only after clear_for of clear, exactly one transition each."""
    assert run(steps, rule(for_seconds=for_seconds, clear_for_seconds=clear_for)) == expected


def test_alert_carries_rule_fields_fingerprint_and_times():
    """The alert takes its fields from the rule, its fingerprint from rule name + merged labels, ends_at on resolve."""
    r = rule(labels={"team": "core"}, clear_for_seconds=10)
    alert, _ = advance(
        None,
        True,
        r,
        T0,
        value=3.0,
        labels={"service": "gemini"},
        trace_id="abc",
        jaeger_url="http://j/trace/abc",
        logs_url="http://l/select/vmui/#/?query=trace_id%3A%22abc%22",
    )
    assert alert.fingerprint == fingerprint("redis_down", {"service": "gemini", "team": "core"})
    assert (alert.error_code, alert.priority, alert.value, alert.starts_at) == (
        "REDIS_CONNECTION_FAILED",
        Priority.P0,
        3.0,
        T0,
    )
    assert (alert.trace_id, alert.jaeger_url, alert.service) == ("abc", "http://j/trace/abc", "gemini")
    assert alert.logs_url == "http://l/select/vmui/#/?query=trace_id%3A%22abc%22"
    cleared, _ = advance(alert, False, r, T0 + dt.timedelta(seconds=20))
    assert cleared.ends_at == T0 + dt.timedelta(seconds=20) and cleared.trace_id == "abc"
    resolved, transition = advance(cleared, False, r, T0 + dt.timedelta(seconds=30))
    assert (resolved.state, transition, resolved.ends_at) == (
        AlertState.RESOLVED,
        "resolved",
        T0 + dt.timedelta(seconds=20),
    )


@pytest.mark.parametrize(
    "summary,labels,value,expected",
    [
        (
            "Gemini throttles calls: {{ $labels.limit }} of {{$labels.model}}: retry in {{ $value }} s",
            {"limit": "per-minute tokens", "model": "gemini-2.0-flash"},
            46.0,
            "Gemini throttles calls: per-minute tokens of gemini-2.0-flash: retry in 46 s",
        ),
        ("{{ $labels.absent }}|{{ $value }}", {}, None, "|"),  # as Prometheus: a missing label renders empty
        ("plain ${not.a.template} {{ .Labels }}", {"x": "y"}, 1.5, "plain ${not.a.template} {{ .Labels }}"),
        ('spent: {{ $value | printf "%.2f" }} USD', {}, 10.004999999, "spent: 10.00 USD"),  # dollars and cents
        ('{{$value|printf "%.2f"}} of {{ $value | printf "%.0f" }}', {}, 1234.5678, "1234.57 of 1235"),
        ('{{ $value | printf "%.2f" }}', {}, None, ""),
    ],
)
def test_summary_template_fills_labels_and_value(summary, labels, value, expected):
    """A summary's ``{{ $labels.NAME }}`` and ``{{ $value }}`` are filled in as Prometheus fills them; other text
    stays as written."""
    assert render_summary(summary, labels, value) == expected


def test_new_alert_summary_names_its_labels_and_value():
    """An alert's summary is rendered from the labels of its series and the value that raised it."""
    r = rule().model_copy(update={"summary": "{{ $labels.limit }}: retry in {{ $value }} s"})
    alert, _ = advance(None, True, r, T0, value=46.0, labels={"limit": "per-minute requests"})
    assert alert.summary == "per-minute requests: retry in 46 s"


def test_resolved_alert_that_returns_fires_again():
    """After resolving, the same condition returning is a new firing (one more notification)."""
    r = rule(clear_for_seconds=0)
    alert, _ = advance(None, True, r, T0)
    alert, _ = advance(alert, False, r, T0 + dt.timedelta(seconds=5))
    again, transition = advance(alert, True, r, T0 + dt.timedelta(seconds=10))
    assert (again.state, transition, again.starts_at, again.ends_at) == (
        AlertState.FIRING,
        "firing",
        T0 + dt.timedelta(seconds=10),
        None,
    )


def firing(rule_name: str, service: str | None = None) -> Alert:
    labels = {"service": service} if service else {}
    return Alert(
        fingerprint=fingerprint(rule_name, labels),
        rule=rule_name,
        priority=Priority.P0,
        state=AlertState.FIRING,
        error_code="X",
        summary="s",
        action_required="a",
        runbook="r",
        labels=labels,
    )


RULES = {
    r.name: r
    for r in [
        rule("redis_down"),
        rule("database_down"),
        rule("streak_p0", inhibited_by=("redis_down", "database_down")),
        rule("project_success_low", inhibited_by=("database_down",)),
        rule("disk_low"),
        rule("streak_p1", inhibited_by=("streak_p0", "redis_down")),
    ]
}


@pytest.mark.parametrize(
    "alerts, kept, inhibited, names",
    [
        # nothing upstream firing: everything kept, nobody named
        ([firing("streak_p0", "gemini"), firing("disk_low")], ["streak_p0", "disk_low"], [], {}),
        # Redis down holds back the streaks and names them (rule + service)
        (
            [firing("redis_down"), firing("streak_p0", "gemini"), firing("streak_p0", "d-id"), firing("disk_low")],
            ["redis_down", "disk_low"],
            ["streak_p0", "streak_p0"],
            {"redis_down": ("streak_p0 (d-id)", "streak_p0 (gemini)"), "disk_low": ()},
        ),
        # the database inhibits both streaks and project success; Redis, firing too, also names the streak
        (
            [
                firing("database_down"),
                firing("redis_down"),
                firing("streak_p0", "youtube"),
                firing("project_success_low"),
            ],
            ["database_down", "redis_down"],
            ["streak_p0", "project_success_low"],
            {"database_down": ("project_success_low", "streak_p0 (youtube)"), "redis_down": ("streak_p0 (youtube)",)},
        ),
        # an inhibitor that is not among the firing alerts inhibits nothing
        ([firing("project_success_low")], ["project_success_low"], [], {"project_success_low": ()}),
        # a provider's alert holds back that provider's alerts only: Gemini's P0 streak, not D-ID's P1 streak
        (
            [firing("streak_p0", "gemini"), firing("streak_p1", "gemini"), firing("streak_p1", "d-id")],
            ["streak_p0", "streak_p1"],
            ["streak_p1"],
            {"streak_p0": ("streak_p1 (gemini)",)},
        ),
    ],
)
def test_inhibition_table(alerts, kept, inhibited, names):
    """Alerts whose inhibited_by rule fires are held back; each inhibitor names what it holds back."""
    kept_alerts, inhibited_alerts = inhibit(alerts, RULES)
    assert [a.rule for a in kept_alerts] == kept
    assert [a.rule for a in inhibited_alerts] == inhibited
    for alert in kept_alerts:
        if alert.rule in names:
            assert alert.inhibited == names[alert.rule]
    assert [a.service for a in kept_alerts if a.rule == "streak_p1"] == (
        ["d-id"] if any(a.rule == "streak_p1" for a in alerts) else []
    )

"""The alert state machine, pending -> firing -> resolved, as one pure function of the previous state and now."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from otel_monitor.monitor.alerting.model import (
    FIRING,
    RESOLVED,
    Alert,
    AlertChanges,
    AlertState,
    Rule,
    Transition,
    fingerprint,
)

__all__ = ["advance", "render_summary"]

# Prometheus's template forms a summary may use (the exported rules render them the same): a label, the value, the
# value rounded to N decimals (``{{ $value | printf "%.2f" }}``, for dollars).
_TEMPLATE = re.compile(
    r"\{\{\s*\$(?:labels\.(?P<label>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<value>value)(?:\s*\|\s*printf\s+\"%\.(?P<decimals>\d)f\")?)\s*\}\}"
)


def render_summary(text: str, labels: Mapping[str, str], value: float | None) -> str:
    """``text`` with ``{{ $labels.NAME }}``, ``{{ $value }}`` and ``{{ $value | printf "%.Nf" }}`` filled in as
    Prometheus fills them (a missing label and an unknown value render empty)."""

    def fill(match: re.Match[str]) -> str:
        if match["label"]:
            return labels.get(match["label"], "")
        if value is None:
            return ""
        return f"{value:g}" if match["decimals"] is None else f"{value:.{int(match['decimals'])}f}"

    return _TEMPLATE.sub(fill, text)


def _new_alert(rule: Rule, labels: dict[str, str], now: dt.datetime, value: float | None = None) -> Alert:
    return Alert(
        fingerprint=fingerprint(rule.name, labels),
        rule=rule.name,
        priority=rule.priority,
        state=AlertState.PENDING,
        error_code=rule.error_code,
        summary=render_summary(rule.summary, labels, value),
        action_required=rule.action_required,
        runbook=rule.runbook,
        labels=labels,
        starts_at=now,
    )


def advance(
    previous: Alert | None,
    active: bool,
    rule: Rule,
    now: dt.datetime,
    value: float | None = None,
    labels: Mapping[str, str] | None = None,
    trace_id: str | None = None,
    jaeger_url: str | None = None,
    logs_url: str | None = None,
) -> tuple[Alert | None, Transition | None]:
    """The alert after one evaluation of its condition at ``now``, and the transition to notify, if any.

    ``starts_at`` is when the condition began to hold (the pending start). The condition must hold
    ``rule.for_seconds`` before the alert fires (0: at once); a pending alert whose condition clears is dropped
    (None) without a word. A firing alert whose condition clears keeps firing, its ``ends_at`` marking when it
    cleared, until it has stayed clear ``rule.clear_for_seconds``: then it resolves with that ``ends_at``. A
    condition that returns within clear_for only erases ``ends_at`` (no flapping, no second notification).
    ``labels`` are merged over ``rule.labels`` for a new alert; an existing alert keeps its own.
    """
    if previous is None or previous.state is AlertState.RESOLVED:
        if not active:
            return previous, None
        previous = _new_alert(rule, {**rule.labels, **(labels or {})}, now, value)
        return _holding(previous, rule, now, value, trace_id, jaeger_url, logs_url)
    if active:
        return _holding(previous, rule, now, value, trace_id, jaeger_url, logs_url)
    if previous.state is AlertState.PENDING:
        return None, None
    cleared_at = previous.ends_at or now
    if (now - cleared_at).total_seconds() >= rule.clear_for_seconds:
        return previous.with_state(AlertState.RESOLVED, ends_at=cleared_at), RESOLVED
    return previous.with_state(AlertState.FIRING, ends_at=cleared_at), None


def _holding(
    alert: Alert,
    rule: Rule,
    now: dt.datetime,
    value: float | None,
    trace_id: str | None,
    jaeger_url: str | None,
    logs_url: str | None,
) -> tuple[Alert, Transition | None]:
    """The alert whose condition holds at ``now``: pending until for_seconds have passed, then firing."""
    changes: AlertChanges = {"value": value, "ends_at": None}
    if trace_id is not None:  # keep the last failing trace when this evaluation found none
        changes.update({"trace_id": trace_id, "jaeger_url": jaeger_url, "logs_url": logs_url})
    if alert.state is AlertState.FIRING:
        return alert.with_state(AlertState.FIRING, **changes), None
    held = (now - alert.starts_at).total_seconds() if alert.starts_at else 0.0
    if held >= rule.for_seconds:
        return alert.with_state(AlertState.FIRING, **changes), FIRING
    return alert.with_state(AlertState.PENDING, **changes), None

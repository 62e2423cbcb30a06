"""Alerts for tests: one well-formed P0 alert, with any field changed, a check source the test drives, the Gemini
invalid-key rule, and waiting for rules to fire on a real Prometheus."""

from __future__ import annotations

import asyncio
import datetime as dt

from otel_monitor.monitor.alerting.evaluate.evaluator import Evaluator
from otel_monitor.monitor.alerting.evaluate.sources import Sample
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority, Rule

__all__ = ["make_alert", "Conditions", "STARTS", "ENDS", "gemini_key_rule", "firing"]

STARTS = dt.datetime(2025, 10, 20, 10, 30, 15, tzinfo=dt.UTC)
ENDS = STARTS + dt.timedelta(minutes=7)


def make_alert(state: AlertState = AlertState.FIRING, **changes) -> Alert:
    values = {
        "fingerprint": "a1b2c3d4e5f60718",
        "rule": "ProviderInvalidKey",
        "priority": Priority.P0,
        "state": state,
        "error_code": "GEMINI_INVALID_API_KEY",
        "summary": "API Key Invalid",
        "action_required": "Check GEMINI_API_KEY in environment variables",
        "runbook": "https://runbooks.local/gemini-key",
        "labels": {"service": "gemini"},
        "starts_at": STARTS,
        "ends_at": ENDS if state is AlertState.RESOLVED else None,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "jaeger_url": "http://jaeger.local/trace/4bf92f3577b34da6a3ce929d0e0e4736",
        "logs_url": "http://logs.local/select/vmui/#/?query=trace_id%3A%224bf92f3577b34da6a3ce929d0e0e4736%22",
    }
    values.update(changes)
    return Alert(**values)


class Conditions:
    """The check source of a test: the rule names whose condition holds now (``holding``), set by the test."""

    name = "check"

    def __init__(self) -> None:
        self.holding: set[str] = set()

    async def evaluate(self, rule: Rule) -> list[Sample]:
        return [Sample({})] if rule.name in self.holding else []


def gemini_key_rule(*, interval_seconds: float = 1) -> Rule:
    """A P0 check rule on Gemini's failure streak (the invalid-key alert), firing and clearing at once."""
    return Rule(
        name="GeminiInvalidApiKey",
        priority=Priority.P0,
        source="check",
        expr="streak.gemini",
        for_seconds=0,
        clear_for_seconds=0,
        interval_seconds=interval_seconds,
        error_code="GEMINI_INVALID_API_KEY",
        labels={"service": "gemini"},
        summary="Gemini rejects the API key",
        action_required="Check GEMINI_API_KEY",
        runbook="-",
    )


async def firing(evaluator: Evaluator, rules: set[str], timeout: float = 90.0) -> dict[str, Alert]:
    """{rule: alert} once every rule in ``rules`` fires (evaluated once a second), or what fires at the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await evaluator.evaluate_once()
        alerts = {a.rule: a for a in evaluator.alerts() if a.state is AlertState.FIRING}
        if rules <= set(alerts) or asyncio.get_running_loop().time() > deadline:
            return alerts
        await asyncio.sleep(1)

"""The shared vocabulary of alerting: priorities, rules as loaded, alerts, their states and transitions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Priority", "AlertState", "Rule", "Alert", "AlertChanges", "fingerprint", "Transition", "FIRING", "RESOLVED"]

# What is announced of an alert: it started firing, or it resolved.
Transition = Literal["firing", "resolved"]
FIRING: Literal["firing"] = "firing"
RESOLVED: Literal["resolved"] = "resolved"


class Priority(str, Enum):
    """P0: at once to every channel; P1: logged at once, digest every 30 minutes; P2: logged and sent at once,
    listed in the daily summary."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"

    @property
    def severity(self) -> str:
        """The conventional severity (Prometheus ``severity`` label, PagerDuty): critical, warning, info."""
        return _SEVERITIES[self]


_SEVERITIES = {Priority.P0: "critical", Priority.P1: "warning", Priority.P2: "info"}


class AlertState(str, Enum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Rule(BaseModel):
    """One rule of the rules file.

    ``source`` says how ``expr`` is evaluated: ``promql`` (an instant query to Prometheus; every result series
    is one alert, its labels merged over ``labels``) or ``check`` (one of the service's own checks, named like
    ``health.redis``, ``health.celery``, ``quota.d-id``, ``streak.gemini``: the check's result is the condition).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    priority: Priority
    source: Literal["promql", "check"] = "promql"
    expr: str = Field(min_length=1)
    # How long the condition must hold before the alert fires (0: at once), and stay clear before it resolves.
    for_seconds: float = Field(0, ge=0)
    clear_for_seconds: float = Field(60, ge=0)
    # How often the rule is evaluated; None: the default of its priority (P0 every few seconds).
    interval_seconds: float | None = Field(None, gt=0)
    error_code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str
    action_required: str
    runbook: str
    # Names of rules whose firing alerts hold this rule's alerts back (e.g. Redis down inhibits API streaks).
    inhibited_by: tuple[str, ...] = ()


def fingerprint(rule_name: str, labels: dict[str, str]) -> str:
    """A stable id of one alert: the rule and its labels, whatever their order."""
    canonical = json.dumps({"rule": rule_name, "labels": dict(sorted(labels.items()))}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class AlertChanges(TypedDict, total=False):
    """What may change of an alert along with its state (``Alert.with_state``)."""

    value: float | None
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    trace_id: str | None
    jaeger_url: str | None
    logs_url: str | None


@dataclass(frozen=True)
class Alert:
    """One alert instance of a rule; notifications carry everything an operator needs."""

    fingerprint: str
    rule: str
    priority: Priority
    state: AlertState
    error_code: str
    summary: str
    action_required: str
    runbook: str
    labels: dict[str, str] = field(default_factory=dict)
    value: float | None = None
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    trace_id: str | None = None
    jaeger_url: str | None = None
    # The failing call's log lines in the log store (VictoriaLogs), beside its trace in Jaeger.
    logs_url: str | None = None
    # Alerts held back by this one (inhibition), named in its notification.
    inhibited: tuple[str, ...] = ()

    @property
    def service(self) -> str | None:
        return self.labels.get("service")

    def with_state(self, state: AlertState, **changes: Unpack[AlertChanges]) -> Alert:
        return replace(self, state=state, **changes)

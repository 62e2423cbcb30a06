"""The status summary's data model: what ``GET /api/v1/status`` answers and the HTML page renders."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

__all__ = [
    "UP",
    "DEGRADED",
    "DOWN",
    "UNKNOWN",
    "State",
    "worst_state",
    "UptimeDay",
    "Component",
    "ProviderMetrics",
    "QuotaBar",
    "Provider",
    "ActiveAlert",
    "Spend",
    "StatusSummary",
]

UP: Final = "up"
DEGRADED: Final = "degraded"
DOWN: Final = "down"
UNKNOWN: Final = "unknown"  # no reading: a provider without traffic or metrics, a check not run yet
State = Literal["up", "degraded", "down", "unknown"]
# Severity order for the overall state; unknown says nothing bad, so it weighs like up.
_SEVERITY = {UP: 0, UNKNOWN: 0, DEGRADED: 1, DOWN: 2}


def worst_state(*states: str) -> State:
    """The most severe of ``states`` (up when there are none, or only unknown ones)."""
    worst = max((_SEVERITY.get(state, 2) for state in states), default=0)
    return DOWN if worst == 2 else DEGRADED if worst == 1 else UP


class UptimeDay(BaseModel):
    """One UTC day of a component's uptime bar: ``checks_total`` 0 is a day without data."""

    day: dt.date
    checks_up: int
    checks_total: int


class Component(BaseModel):
    """One dependency check of the health service, as its latest report says."""

    name: str
    state: State
    latency_ms: float | None = None
    error: str | None = None
    uptime: list[UptimeDay] = Field(default_factory=list)


class ProviderMetrics(BaseModel):
    """A provider's calls over the last hour, from Prometheus; ``available`` False: Prometheus did not answer."""

    available: bool
    calls: float | None = None
    success_rate: float | None = Field(None, description="0..1; None without traffic")
    p90_seconds: float | None = None
    sparkline: list[float | None] = Field(default_factory=list, description="P90 seconds, oldest first")


class QuotaBar(BaseModel):
    """A provider's quota: share used, when it resets and when it runs out at the current burn rate."""

    used: float | None
    total: float | None
    unit: str
    percentage: float | None
    status: str
    reset_at: dt.datetime | None
    reset_in_seconds: float | None
    forecast_exhausted_at: dt.datetime | None


class Provider(BaseModel):
    """One external provider of the registry."""

    key: str
    name: str
    state: State
    metrics: ProviderMetrics
    quota: QuotaBar | None = None
    uptime: list[UptimeDay] = Field(default_factory=list)


class ActiveAlert(BaseModel):
    """A pending or firing alert, with its trace link when it has one."""

    fingerprint: str
    rule: str
    priority: str
    state: str
    service: str | None
    summary: str
    starts_at: dt.datetime | None
    jaeger_url: str | None
    logs_url: str | None = None


class Spend(BaseModel):
    """USD one budget (a provider's service key, or ``total``) spent today and this month (UTC), across every
    backend process, with its budgets when set."""

    budget: str
    today_usd: float
    month_usd: float
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None


class StatusSummary(BaseModel):
    """The whole status: the overall state is the worst of the components, the providers and the active P0s."""

    state: State
    generated_at: dt.datetime
    components: list[Component]
    providers: list[Provider]
    alerts: list[ActiveAlert]
    incidents: list[dict[str, Any]] = Field(description="open incidents as /api/v1/incidents shows them")
    silences: list[dict[str, Any]]
    spend: list[Spend] | None = Field(None, description="None: no spend ledger (quota.redis_url) or it did not answer")

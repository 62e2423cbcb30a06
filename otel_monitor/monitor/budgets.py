"""Spend budgets (USD per provider and in total, per UTC day and month): their config, what is spent, and the gauges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from pydantic import BaseModel, ConfigDict, Field, field_validator

from otel_monitor.instrument.metrics import COST_UNIT, METER_NAME
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.instrument.spend_ledger import TOTAL_BUDGET, BudgetPeriod, SpendLedger

__all__ = [
    "BudgetLabel",
    "BudgetMetricNames",
    "BudgetPromNames",
    "BudgetsConfig",
    "SpendLine",
    "read_spend",
    "register_budget_metrics",
]

# What a budget may be named: a provider's service key, or the total over all of them.
BUDGET_NAMES = (TOTAL_BUDGET, *SERVICE_KEYS)


class BudgetMetricNames:
    """OpenTelemetry instrument names of the budget gauges (labels: BudgetLabel)."""

    SPENT = "budget.spent"
    LIMIT = "budget.limit"
    MINIMUM_SPEND = "budget.minimum_spend"


class BudgetPromNames:
    """The series names in Prometheus (the exporter appends the unit, ``_usd``)."""

    # USD spent so far in the current period, across every backend process (read from the Redis ledger)
    SPENT = "budget_spent_usd"
    # the configured budget of the period (only budgets that are set)
    LIMIT = "budget_limit_usd"
    # the minimum-spend guard: no forecast alert before the period's spend reaches it
    MINIMUM_SPEND = "budget_minimum_spend_usd"


class BudgetLabel:
    """Labels of the budget gauges: the budget (a service key or ``total``) and the period (``day``, ``month``)."""

    BUDGET = "budget"
    PERIOD = "period"


class BudgetsConfig(BaseModel):
    """``budgets:`` of the monitor's config: USD per UTC day and per UTC month, per provider (its service key) and
    in ``total``; a budget not set is not watched. ``minimum_spend_usd``: the burn-rate forecast stays quiet until
    a period's spend reaches it (a quiet day's single early call extrapolates to a huge rate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily: dict[str, float] = Field(default_factory=dict)
    monthly: dict[str, float] = Field(default_factory=dict)
    minimum_spend_usd: float = Field(1.0, ge=0)

    @field_validator("daily", "monthly")
    @classmethod
    def _known_budgets(cls, budgets: dict[str, float]) -> dict[str, float]:
        for name, limit in budgets.items():
            if name not in BUDGET_NAMES:
                raise ValueError(f"unknown budget {name!r}: one of {', '.join(BUDGET_NAMES)}")
            if not limit > 0:
                raise ValueError(f"budget {name!r} must be more than 0 USD, not {limit}")
        return budgets

    def limits(self, period: BudgetPeriod) -> dict[str, float]:
        return self.daily if period is BudgetPeriod.DAY else self.monthly


@dataclass(frozen=True)
class SpendLine:
    """One budget's spend today and this month (UTC) and its budgets when set."""

    budget: str
    today_usd: float
    month_usd: float
    daily_budget_usd: float | None
    monthly_budget_usd: float | None


def _with_total(spent: dict[str, float]) -> dict[str, float]:
    return {**spent, TOTAL_BUDGET: sum(spent.values())}


def read_spend(ledger: SpendLedger, config: BudgetsConfig, now: dt.datetime) -> list[SpendLine]:
    """Each provider that spent or has a budget, then the total; blocks on Redis (raises what it raises)."""
    today = _with_total(ledger.spent(BudgetPeriod.DAY, now))
    month = _with_total(ledger.spent(BudgetPeriod.MONTH, now))
    names = sorted((set(today) | set(month) | set(config.daily) | set(config.monthly)) - {TOTAL_BUDGET})
    return [
        SpendLine(
            budget=name,
            today_usd=today.get(name, 0.0),
            month_usd=month.get(name, 0.0),
            daily_budget_usd=config.daily.get(name),
            monthly_budget_usd=config.monthly.get(name),
        )
        for name in [*names, TOTAL_BUDGET]
    ]


def register_budget_metrics(
    read: Callable[[], list[SpendLine] | None],
    config: BudgetsConfig,
    *,
    meter_provider: MeterProvider | None = None,
) -> None:
    """The budget gauges; each collection calls ``read()`` (None: unknown, no spend exported). Limits and the
    guard come from ``config`` and are exported for the budgets that are set, so the rules need no copy of them."""
    meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)

    def labels(budget: str, period: BudgetPeriod) -> dict[str, str]:
        return {BudgetLabel.BUDGET: budget, BudgetLabel.PERIOD: period.value}

    def observe_spent(_options: CallbackOptions) -> Iterator[Observation]:
        for line in read() or []:
            yield Observation(line.today_usd, labels(line.budget, BudgetPeriod.DAY))
            yield Observation(line.month_usd, labels(line.budget, BudgetPeriod.MONTH))

    def observe_configured(value: Callable[[float], float]) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def observe(_options: CallbackOptions) -> Iterator[Observation]:
            for period in BudgetPeriod:
                for budget, limit in config.limits(period).items():
                    yield Observation(value(limit), labels(budget, period))

        return observe

    meter.create_observable_gauge(
        BudgetMetricNames.SPENT,
        [observe_spent],
        unit=COST_UNIT,
        description="USD spent in the current UTC day or month, across all processes",
    )
    meter.create_observable_gauge(
        BudgetMetricNames.LIMIT, [observe_configured(lambda limit: limit)], unit=COST_UNIT, description="USD budget"
    )
    meter.create_observable_gauge(
        BudgetMetricNames.MINIMUM_SPEND,
        [observe_configured(lambda _limit: config.minimum_spend_usd)],
        unit=COST_UNIT,
        description="Spend below which no budget forecast alerts",
    )

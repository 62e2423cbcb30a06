"""The budgets config: known budget names and positive limits only, each mistake named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from otel_monitor.instrument.spend_ledger import BudgetPeriod
from otel_monitor.monitor.budgets import BudgetsConfig


@pytest.mark.parametrize(
    ("raw", "mistake"),
    [
        ({"daily": {"openai": 5}}, "unknown budget 'openai'"),
        ({"monthly": {"total": 0}}, "must be more than 0 USD"),
        ({"daily": {"gemini": -1}}, "must be more than 0 USD"),
        ({"minimum_spend_usd": -1}, "greater than or equal to 0"),
        ({"weekly": {"total": 5}}, "Extra inputs are not permitted"),
    ],
)
def test_a_wrong_budget_is_refused_by_name(raw, mistake):
    """Each mistake is refused with a message naming it."""
    with pytest.raises(ValidationError, match=mistake):
        BudgetsConfig.model_validate(raw)


def test_limits_by_period():
    """The daily and monthly limits are each period's own."""
    config = BudgetsConfig(daily={"total": 20, "gemini": 5}, monthly={"total": 400})
    assert config.limits(BudgetPeriod.DAY) == {"total": 20, "gemini": 5}
    assert config.limits(BudgetPeriod.MONTH) == {"total": 400}

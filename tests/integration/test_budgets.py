"""Acceptance of the budgets on a stack of their own: real projects of the demo backend spend through its
instrumented clients; the served monitor reads the spend from the backend's Redis, exports it to Prometheus,
evaluates the shipped BudgetSpent rule there and sends the P0 to a webhook, and its status page shows the spend
today and this month against the budgets."""

from __future__ import annotations

import json
import re
import shutil

import httpx
import pytest
import yaml
from selenium.webdriver.common.by import By

from examples.demo_backend.providers import SCRIPT_MODEL
from tests.support.browser import chromium
from tests.support.demo import create_project, demo_backend, gemini_tokens, wait_finished
from tests.support.monitor import alerting_monitor
from tests.support.stacks import private_stack, server_workdir
from tools.devstack import wait_until
from tools.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.stack

SHIPPED_RULES = REPO_ROOT / "config" / "alert-rules.yaml"
# Gemini at whole dollars per token, so the project's spend is exact: far over the tiny daily budget.
PRICES = {"gemini": {SCRIPT_MODEL: {"input_per_million_tokens": 1_000_000, "output_per_million_tokens": 3_000_000}}}
TINY_DAILY_BUDGET = 1.0
MONTHLY_BUDGET = 100_000.0
TOPIC = "otters"
# Bounds every wait on the monitor (export every second, Prometheus scraping every second, P0 evaluated each second).
ALERT_TIMEOUT_SECONDS = 90


@pytest.fixture(scope="module")
def own_stack():
    """A stack of this module alone: its Redis holds only this module's spend."""
    with private_stack("otel-monitor-budgets-") as dev:
        yield dev


@pytest.fixture(scope="module")
def spent(own_stack, fakes):
    """One Gemini project of the demo backend, priced by ``PRICES``: the USD it spent."""
    workdir = server_workdir("otel-monitor-budgets-demo-")
    backend = demo_backend(
        own_stack, fakes, workdir, "budgets", extra_env={"OTEL_MONITOR_PRICES": json.dumps(PRICES)}
    ).start()
    try:
        input_tokens, output_tokens = gemini_tokens(fakes, TOPIC)
        accepted = create_project(backend, ["gemini"], TOPIC)
        finished = wait_finished(backend, {accepted["project_id"]})
        cost = finished[accepted["project_id"]]["cost_usd"]
        assert cost == input_tokens * 1.0 + output_tokens * 3.0 > TINY_DAILY_BUDGET
        yield cost
    finally:
        backend.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def shipped_rule(name: str) -> dict:
    """The shipped rule ``name`` as written (its expression, summary and priority), evaluated every second."""
    rules = yaml.safe_load(SHIPPED_RULES.read_text())
    (rule,) = [rule for rule in rules["rules"] if rule["name"] == name]
    return {"thresholds": str(SHIPPED_RULES.parent / rules["thresholds"]), "rules": [{**rule, "interval_seconds": 1}]}


def test_budget_spent_reaches_the_webhook_and_the_status_page_shows_the_spend(own_stack, spent, receiver, workdir):
    """With a tiny daily budget, the project's real calls make the shipped P0 BudgetSpent fire through Prometheus
    and reach the webhook once, its summary in dollars and cents; the status page (the API and the HTML rendered
    by the server) shows the spend today and this month with each budget."""
    monitor = alerting_monitor(
        own_stack,
        workdir,
        shipped_rule("BudgetSpent"),
        {"ops-hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
        service_name="budgets-under-test",
    )
    monitor.config["budgets"] = {"daily": {"total": TINY_DAILY_BUDGET}, "monthly": {"total": MONTHLY_BUDGET}}
    with monitor:

        def budget_alerts() -> list[dict]:
            return [r["json"] for r in receiver.requests if r["json"]["alert"]["rule"] == "BudgetSpent"]

        (notification,) = wait_until(budget_alerts, ALERT_TIMEOUT_SECONDS, what="BudgetSpent at the webhook")
        assert notification["status"] == "firing" and notification["alert"]["priority"] == "P0"
        assert notification["alert"]["labels"] == {"budget": "total", "period": "day"}
        summary = notification["alert"]["summary"]
        assert f"{spent:.2f} USD" in summary and re.search(r"\d\.\d{3}", summary) is None, summary

        by_budget = {
            line["budget"]: line for line in httpx.get(f"{monitor.url}/api/v1/status", timeout=10).json()["spend"]
        }
        assert by_budget == {
            "gemini": {
                "budget": "gemini",
                "today_usd": spent,
                "month_usd": spent,
                "daily_budget_usd": None,
                "monthly_budget_usd": None,
            },
            "total": {
                "budget": "total",
                "today_usd": spent,
                "month_usd": spent,
                "daily_budget_usd": TINY_DAILY_BUDGET,
                "monthly_budget_usd": MONTHLY_BUDGET,
            },
        }
        with chromium(javascript=False) as driver:
            driver.get(f"{monitor.url}/")
            total = driver.find_element(By.ID, "spend-total")
            assert total.find_element(By.CLASS_NAME, "today").text == f"{spent:.2f} USD of {TINY_DAILY_BUDGET:.2f}"
            assert total.find_element(By.CLASS_NAME, "month").text == f"{spent:.2f} USD of {MONTHLY_BUDGET:.2f}"
            assert driver.find_element(By.ID, "spend-gemini").find_element(By.CLASS_NAME, "today").text == (
                f"{spent:.2f} USD"
            )
        assert len(budget_alerts()) == 1  # one notification while the budget stays spent

"""Every panel shows data: after demo traffic, each dashboard query returns a series from the real Prometheus (a
logs panel's LogsQL: a line from the real VictoriaLogs)."""

from __future__ import annotations

import json
import re
import shutil
import time

import httpx
import pytest
import yaml

from examples.demo_backend.launcher import DEMO_SECRETS
from examples.monitor_launcher import MonitorProcess
from otel_monitor.instrument.providers import SERVICE_KEYS
from tests.support.demo import create_project, demo_backend, wait_finished
from tests.support.receivers import Receiver
from tools.dashboards import DASHBOARD_DIR, DASHBOARDS
from tools.dashboards.grafana import VICTORIALOGS
from tools.devstack import server_workdir, wait_until
from tools.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.stack

# The dashboards' default range (now-1h): the queries run over it, whatever the stack's age (a younger stack has
# simply no samples before it started).
RANGE_SECONDS = 3600
# Grafana's $__interval for 1 h drawn over ~1000 points (3.6 s), rounded as Grafana does (to 5 s) and never below
# the data source's scrape interval (timeInterval); $__rate_interval = max($__interval + scrape, 4 x scrape).
SCRAPE_SECONDS = int(
    yaml.safe_load((REPO_ROOT / "config/grafana/datasources.yml").read_text())["datasources"][0]["jsonData"][
        "timeInterval"
    ].removesuffix("s")
)
INTERVAL_SECONDS = max(5, SCRAPE_SECONDS)
RATE_INTERVAL_SECONDS = max(INTERVAL_SECONDS + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)
BUILT_IN = {
    "__range": f"{RANGE_SECONDS}s",
    "__interval": f"{INTERVAL_SECONDS}s",
    "__rate_interval": f"{RATE_INTERVAL_SECONDS}s",
}
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<plain>\w+))")

# Queries that cannot have data in the demo, (dashboard, panel title, refId) -> why.
NO_DATA_IN_THE_DEMO = {
    ("business.json", "Active users", "B"): "the same time yesterday: the stack is minutes old",
    ("pipeline.json", "Send failures and drops", "A"): "no exporter fails to send while the stack is healthy",
    ("pipeline.json", "Send failures and drops", "B"): "no exporter fails to send while the stack is healthy",
    ("pipeline.json", "Send failures and drops", "C"): "no exporter queue is ever full in the demo",
    ("pipeline.json", "Send failures and drops", "D"): "no exporter queue is ever full in the demo",
}
# Panels of the repeated provider row that only some providers can fill, title -> (those providers, why).
PROVIDERS_WITH_DATA = {
    "$service items failed": ({"stability"}, "only Stability asks for several items (images) per call"),
    "$service token refresh success rate": ({"youtube"}, "only YouTube refreshes an OAuth token"),
    "$service failed calls (log)": (
        {"gemini", "stability"},
        "only Gemini (invalid key, timeout) and Stability (partial failure) fail in the demo",
    ),
}


def _dashboards() -> dict[str, dict]:
    return {name: json.loads((DASHBOARD_DIR / name).read_text()) for name in DASHBOARDS}


def _queries() -> list:
    """(dashboard, panel, target, the variable its row repeats by or None) of every query, as pytest params; the
    queries listed in NO_DATA_IN_THE_DEMO are left out (test_the_listed_exceptions_exist keeps the list honest)."""
    cases = []
    for name, board in _dashboards().items():
        repeat = None
        for panel in board["panels"]:
            if panel["type"] == "row":
                repeat = panel.get("repeat")
                continue
            for query in panel["targets"]:
                if (name, panel["title"], query["refId"]) not in NO_DATA_IN_THE_DEMO:
                    case_id = f"{name}#{panel['id']} {panel['title']} {query['refId']}"
                    cases.append(pytest.param(name, panel, query, repeat, id=case_id))
    return cases


def _regex(values: list[str]) -> str:
    """A multi-value selection as Grafana writes it into a Prometheus query: ``(a|b)``, regex characters escaped."""
    return "(" + "|".join(re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values) + ")"


def _options(prometheus_url: str, variable: dict) -> list[str]:
    """The values of a ``label_values(metric, label)`` variable, asked of Prometheus as Grafana asks."""
    metric, label = re.fullmatch(r"label_values\((\S+), (\w+)\)", variable["query"]).groups()
    response = httpx.get(f"{prometheus_url}/api/v1/label/{label}/values", params={"match[]": metric}, timeout=10)
    return response.json()["data"]


def _substitute(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        return values[match["braced"] or match["plain"]]  # a KeyError names a variable no one gave a value

    return _VARIABLE.sub(value, expr)


def _series(prometheus_url: str, expr: str, instant: bool) -> list[dict]:
    """The series a query returns over the dashboard's range (a range query), or now (an instant query)."""
    end = time.time()
    if instant:
        response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr, "time": end}, timeout=30)
    else:
        params = {"query": expr, "start": end - RANGE_SECONDS, "end": end, "step": INTERVAL_SECONDS}
        response = httpx.get(f"{prometheus_url}/api/v1/query_range", params=params, timeout=30)
    assert response.status_code == 200, f"{expr}\n-> {response.text}"
    return response.json()["data"]["result"]


def _log_lines(victorialogs_url: str, expr: str, limit: int) -> list[dict]:
    """The lines a LogsQL query returns over the dashboard's range, as the logs panel asks VictoriaLogs for them."""
    end = time.time()
    params = {"query": expr, "start": f"{end - RANGE_SECONDS:.3f}", "end": f"{end:.3f}", "limit": limit}
    response = httpx.get(f"{victorialogs_url}/select/logsql/query", params=params, timeout=30)
    assert response.status_code == 200, f"{expr}\n-> {response.text}"
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def _forecasts(monitor_url: str) -> list[str]:
    """The providers whose quota the monitor forecasts to run out (before it resets)."""
    quotas = httpx.get(f"{monitor_url}/api/v1/system/quota", timeout=10).json()["quotas"]
    return [service for service, quota in quotas.items() if quota.get("forecast_exhausted_at")]


@pytest.fixture(scope="module")
def demo_traffic(stack, fakes):
    """The demo backend and the monitor (quotas read from the fakes, the shipped rules, every priority to a
    webhook), after projects through all four providers, invalid-key failures, a partial failure and a timeout,
    and once the invalid-key alert was delivered."""
    workdir = server_workdir("otel-monitor-dashboard-data-")
    receiver = Receiver().start()
    demo = demo_backend(
        stack,
        fakes,
        workdir / "backend",
        f"panels{int(time.time())}",
        extra_env={"DEMO_REQUEST_TIMEOUT_SECONDS": "0.5"},
    )
    monitor = MonitorProcess(
        stack,
        workdir / "monitor",
        service_name="monitor-dashboard-data",
        health={"cache_ttl_seconds": 1},
        # balances read every few seconds (by default every 15-60 minutes): a reading after the traffic has the
        # credits it spent, so the burn rate and the time to exhaustion exist whatever the first reading found
        quota={
            "d_id": {"base_url": fakes.base_url("d-id"), "api_key": "${DID_API_KEY}", "poll_interval_seconds": 5},
            "stability": {
                "base_url": fakes.base_url("stability"),
                "api_key": "${STABILITY_API_KEY}",
                "poll_interval_seconds": 5,
            },
            "stale_after_seconds": 10,
        },
        env={"DID_API_KEY": DEMO_SECRETS["did_api_key"], "STABILITY_API_KEY": DEMO_SECRETS["stability_api_key"]},
    )
    hook = {"hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}}
    monitor.config["alerting"] = {
        "enabled": True,
        "rules_file": str(REPO_ROOT / "config" / "alert-rules.yaml"),
        "prometheus_url": stack.prometheus_url,
        "jaeger_url": stack.jaeger_url,
        "delivery": {"channels": hook, "routing": {"P0": ["hook"], "P1": ["hook"], "P2": ["hook"]}},
    }
    try:
        with demo, monitor:
            plan = [  # (service, fault mode, projects, the steps of each)
                ("gemini", "ok", 3, list(SERVICE_KEYS)),
                ("gemini", "invalid_key", 2, ["gemini"]),
                ("stability", "partial", 1, ["stability"]),
                ("gemini", "timeout", 1, ["gemini"]),
            ]
            for service, mode, projects, steps in plan:
                fakes.set_fault(service, mode=mode, latencies=[0], hang_seconds=2)
                wait_finished(demo, {create_project(demo, steps)["project_id"] for _ in range(projects)})
                fakes.set_fault(service, mode="ok", latencies=[0])

            def delivered():
                return [
                    r
                    for r in receiver.requests
                    if r["path"] == "/hook" and r["json"]["alert"]["error_code"] == "GEMINI_INVALID_API_KEY"
                ]

            wait_until(delivered, 120, interval=1, what="the invalid-key alert at the webhook")
            # the time-to-exhaustion panel: a burn rate needs readings a minute apart around the spending (by the
            # window since the month began, the demo's few credits would run out only after the reset)
            wait_until(lambda: _forecasts(monitor.url), 150, interval=2, what="a quota's exhaustion forecast")
            yield stack
    finally:
        receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("name, panel, query, repeat", _queries())
def test_every_panel_query_returns_data(demo_traffic, name, panel, query, repeat):
    """The query, its variables substituted as Grafana would (All selected; a repeated row once per value), returns at
    least one series (a logs query: at least one line from VictoriaLogs, each with the trace_id its Jaeger link
    needs): for every value of a repeated row's variable, but the providers PROVIDERS_WITH_DATA lists."""
    prometheus = demo_traffic.prometheus_url
    variables = {v["name"]: v for v in _dashboards()[name]["templating"]["list"]}
    options = {variable: _options(prometheus, definition) for variable, definition in variables.items()}
    selected = {variable: variables[variable].get("allValue") or _regex(values) for variable, values in options.items()}
    runs = [{**BUILT_IN, **selected}]
    if repeat is not None:
        wanted, _ = PROVIDERS_WITH_DATA.get(panel["title"], (set(SERVICE_KEYS), ""))
        assert wanted <= set(options[repeat]), f"${repeat} lists {options[repeat]}"
        runs = [{**BUILT_IN, **selected, repeat: _regex([value])} for value in sorted(wanted)]
    if query["datasource"] == VICTORIALOGS:  # a logs panel of a repeated row: the row's one value, as it is
        assert repeat is not None, "a logs query outside a repeated row: say how Grafana formats its variables"
        for value in sorted(wanted):
            expr = _substitute(query["expr"], {**BUILT_IN, repeat: value})
            lines = wait_until(
                lambda expr=expr: _log_lines(demo_traffic.victorialogs_url, expr, query["maxLines"]),
                30,
                interval=1,
                what=f"log lines for {expr}",
            )
            assert all(line.get("trace_id") for line in lines), "a line without the trace_id its link needs"
        return
    for values in runs:
        expr = _substitute(query["expr"], values)
        assert wait_until(
            lambda expr=expr: _series(prometheus, expr, query["instant"]), 30, interval=1, what=f"data for {expr}"
        )


def test_the_listed_exceptions_exist():
    """Every query listed as having no data in the demo, and every panel listed as filled by some providers only,
    is a panel of the dashboards (the list names nothing that is gone)."""
    queries = {
        (name, panel["title"], query["refId"])
        for name, board in _dashboards().items()
        for panel in board["panels"]
        for query in panel.get("targets", ())
    }
    assert set(NO_DATA_IN_THE_DEMO) <= queries
    assert {(name, title) for name, title, _ in queries} >= {("external-apis.json", t) for t in PROVIDERS_WITH_DATA}

"""The generated dashboards: one provider row repeated by $service, each provider's thresholds as its override."""

from __future__ import annotations

import json

import pytest

from otel_monitor.monitor.alerting.thresholds import load_thresholds
from tools.dashboards import DASHBOARD_DIR, DASHBOARDS, THRESHOLDS_FILE, render
from tools.dashboards.grafana import VICTORIALOGS


def _board(name: str) -> dict:
    return json.loads(render(load_thresholds(THRESHOLDS_FILE))[name])


def _repeated_row(board: dict) -> tuple[dict, list[dict]]:
    """The row repeated by a variable and the panels under it (up to the next row)."""
    panels = board["panels"]
    (start,) = [i for i, panel in enumerate(panels) if panel["type"] == "row" and panel.get("repeat")]
    end = next((i for i in range(start + 1, len(panels)) if panels[i]["type"] == "row"), len(panels))
    return panels[start], panels[start + 1 : end]


def _override_steps(panel: dict) -> dict[str, list]:
    """{series name: its threshold step values} of a panel's overrides."""
    found = {}
    for override in panel["fieldConfig"]["overrides"]:
        assert override["matcher"]["id"] == "byName"
        (thresholds,) = [p["value"] for p in override["properties"] if p["id"] == "thresholds"]
        found[override["matcher"]["options"]] = [step["value"] for step in thresholds["steps"]]
    return found


def test_the_committed_files_are_the_generated_set():
    """dashboards/ holds exactly the generated dashboards: none hand-written beside them."""
    assert sorted(path.name for path in DASHBOARD_DIR.glob("*.json")) == sorted(DASHBOARDS)


def test_one_provider_row_repeated_by_the_service_variable():
    """External APIs has one provider row, repeated for each selected $service (multi-value, All included); its
    panels select the row's provider and name each series by it, so an override can match it; its logs panel
    selects the provider's lines in VictoriaLogs."""
    board = _board("external-apis.json")
    row, panels = _repeated_row(board)
    (variable,) = [v for v in board["templating"]["list"] if v["name"] == row["repeat"]]
    assert row["repeat"] == "service" and variable["multi"] and variable["includeAll"]
    assert variable["query"].startswith("label_values(") and variable["query"].endswith(", service)")
    assert len(panels) >= 10
    for panel in panels:
        for query in panel["targets"]:
            if query["datasource"] == VICTORIALOGS:
                assert query["expr"].startswith('service:="$service" '), panel["title"]
                continue
            assert 'service=~"$service"' in query["expr"] and query["legendFormat"] == "{{service}}", panel["title"]
    assert [p["type"] for p in panels].count("logs") == 1
    titles = [p["title"] for b in DASHBOARDS for p in _board(b)["panels"]]
    assert not [title for title in titles if title.startswith(("Gemini ", "Stability ", "D-ID ", "YouTube "))]


@pytest.mark.parametrize(
    "title, expected",
    [
        ("$service P50 latency", {"gemini": [None, 2, 5], "stability": [None, 5, 10], "d-id": [None, 45, 90]}),
        ("$service P99 latency", {"gemini": [None, 10, 20]}),
        (
            "$service success rate",
            {
                "gemini": [None, 0.9, 0.95],
                "stability": [None, 0.85, 0.9],
                "d-id": [None, 0.85, 0.9],
                "youtube": [None, 0.9, 0.95],  # its upload success rate
            },
        ),
        ("$service timeout rate", {"d-id": [None, 0.05, 0.1]}),
        ("$service token refresh success rate", {"youtube": [None, 0.95, 0.99]}),
        ("$service items failed", {}),
    ],
)
def test_each_provider_gets_its_own_thresholds(title, expected):
    """A repeated panel carries one threshold override per provider the thresholds file gives a level to, with that
    provider's numbers; a provider without one keeps the neutral default."""
    _, panels = _repeated_row(_board("external-apis.json"))
    (panel,) = [p for p in panels if p["title"] == title]
    assert _override_steps(panel) == expected
    assert [step["value"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None]


def test_latency_panels_show_exemplars():
    """Every range query of a histogram's buckets asks for exemplars (they link to the Jaeger trace)."""
    found = 0
    for name in DASHBOARDS:
        for panel in _board(name)["panels"]:
            for query in panel.get("targets", ()):
                if "_bucket" in query["expr"] and not query["instant"]:
                    assert query.get("exemplar") is True, f"{name}: {panel['title']}"
                    found += 1
    assert found >= 8


def test_the_alerts_panels_read_the_monitors_alert_gauge():
    """The system dashboard draws otel_monitor_alerts by priority and by rule, priority and state."""
    exprs = [q["expr"] for p in _board("system.json")["panels"] for q in p.get("targets", ())]
    assert any("sum by (rule, priority, state) (otel_monitor_alerts" in expr for expr in exprs)
    assert sum('otel_monitor_alerts{state=~"firing|silenced|acknowledged", priority="P' in e for e in exprs) == 3

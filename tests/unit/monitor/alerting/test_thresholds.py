"""One thresholds source: config/thresholds.yaml feeds the alert rules (at load) and the dashboards (generated)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.monitor.alerting.thresholds import THRESHOLD_REFERENCE, load_thresholds
from otel_monitor.monitor.config_file import ConfigError
from tools.dashboards import DASHBOARD_DIR, THRESHOLDS_FILE, render
from tools.devstack.stack import REPO_ROOT

RULES_FILE = REPO_ROOT / "config" / "alert-rules.yaml"


def _steps(rendered: dict[str, str], name: str, title: str, series: str | None) -> list[float | None]:
    """The threshold steps of a panel: its own, or those its override gives the series named ``series``."""
    board = json.loads(rendered[name])
    (panel,) = [p for p in board["panels"] if p["title"] == title]
    field = panel["fieldConfig"]
    if series is None:
        return [step["value"] for step in field["defaults"]["thresholds"]["steps"]]
    (override,) = [o for o in field["overrides"] if o["matcher"] == {"id": "byName", "options": series}]
    (thresholds,) = [p["value"] for p in override["properties"] if p["id"] == "thresholds"]
    return [step["value"] for step in thresholds["steps"]]


def _rule(path: Path, name: str):
    (rule,) = [rule for rule in load_rules(path, promtool=None) if rule.name == name]
    return rule


@pytest.fixture
def config_copy(tmp_path) -> Path:
    """A copy of config/ (rules and thresholds) in a temp directory."""
    shutil.copytree(REPO_ROOT / "config", tmp_path / "config", ignore=shutil.ignore_patterns("grafana", "compose"))
    return tmp_path


def test_regenerating_the_dashboards_gives_no_diff():
    """`make dashboards` changes nothing: the committed JSON is what tools/dashboards generates from the thresholds."""
    for name, text in render(load_thresholds(THRESHOLDS_FILE)).items():
        assert (DASHBOARD_DIR / name).read_text() == text, f"dashboards/{name} is stale: run `make dashboards`"


@pytest.mark.parametrize(
    "written, changed, rule, old, new, dashboard, panel, series, steps",
    [
        (
            "latency_p50_seconds: {target: 2, warning: 5}",  # Gemini's line
            "latency_p50_seconds: {target: 2, warning: 7}",
            "GeminiLatencyP50High",
            "> 5\n",
            "> 7\n",
            "external-apis.json",
            "$service P50 latency",  # the repeated provider row: Gemini's steps are its override
            "gemini",
            [None, 2, 7],
        ),
        (
            "cpu_usage: {target: 0.70, warning: 0.80, critical: 0.90}",
            "cpu_usage: {target: 0.70, warning: 0.80, critical: 0.95}",
            "CpuUsageCritical",
            "> 0.90",
            "> 0.95",
            "system.json",
            "CPU per host",
            None,
            [None, 0.8, 0.95],
        ),
    ],
)
def test_one_changed_threshold_changes_the_rule_and_the_dashboard(
    config_copy, written, changed, rule, old, new, dashboard, panel, series, steps
):
    """A number changed in a copy of thresholds.yaml is in the loaded rule and in the generated dashboard."""
    thresholds_file = config_copy / "config" / "thresholds.yaml"
    before = thresholds_file.read_text()
    assert before.count(written) == 1
    thresholds_file.write_text(before.replace(written, changed))
    assert old in _rule(RULES_FILE, rule).expr + "\n"  # the shipped rule has the old number
    expr = _rule(config_copy / "config" / "alert-rules.yaml", rule).expr + "\n"
    assert new in expr and old not in expr
    assert _steps(render(load_thresholds(THRESHOLDS_FILE)), dashboard, panel, series) != steps
    assert _steps(render(load_thresholds(thresholds_file)), dashboard, panel, series) == steps


def test_every_reference_of_the_shipped_rules_is_resolved():
    """The shipped rules refer to the thresholds file, and no ${thresholds.…} survives loading."""
    assert THRESHOLD_REFERENCE.search(RULES_FILE.read_text())
    for rule in load_rules(RULES_FILE, promtool=None):
        for text in (rule.expr, rule.summary, rule.action_required, rule.runbook):
            assert "${thresholds." not in text, rule.name


_RULE = """\
thresholds: {thresholds}
rules:
  - name: Slow
    priority: P2
    source: promql
    expr: max(video_active_users) > {reference}
    for_seconds: 0
    clear_for_seconds: 60
    error_code: SLOW
    summary: {summary}
    action_required: none
    runbook: none
"""


@pytest.mark.parametrize(
    "reference, summary, thresholds, problem",
    [
        (
            "${thresholds.system.cpu_usage.nope}",
            "s",
            "THRESHOLDS",
            ":6: rules.0.expr: unknown threshold 'system.cpu_usage.nope'",
        ),
        (
            "${thresholds.system.cpu}",
            "s",
            "THRESHOLDS",
            ":6: rules.0.expr: unknown threshold 'system.cpu'",
        ),
        ("1", "above ${thresholds.x.y.z:percent}", "THRESHOLDS", ":10: rules.0.summary: unknown threshold 'x.y.z'"),
        ("${thresholds.system.cpu_usage.warning}", "s", "null", ":1: thresholds: the rules refer to"),
        ("${thresholds.system.cpu_usage.warning}", "s", "missing.yaml", "missing.yaml: cannot read the file"),
    ],
)
def test_a_bad_threshold_reference_names_file_line_and_key(tmp_path, reference, summary, thresholds, problem):
    """An unknown reference, references with no thresholds file named, or a file that is not there: a config error
    naming the file, the line and the key."""
    path = tmp_path / "rules.yaml"
    named = str(THRESHOLDS_FILE) if thresholds == "THRESHOLDS" else thresholds
    path.write_text(_RULE.format(thresholds=named, reference=reference, summary=summary))
    with pytest.raises(ConfigError) as raised:
        load_rules(path, promtool=None)
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    "summary, expected",
    [
        ("above ${thresholds.system.cpu_usage.critical:percent}%", "above 90%"),
        ("above ${thresholds.all_providers.quota_usage.warning:percent}%", "above 80%"),
        ("over ${thresholds.business.project_generation_seconds.warning} s", "over 1200 s"),
    ],
)
def test_references_write_the_number_as_the_file_does(tmp_path, summary, expected):
    """A reference is the number as written (0.90 stays 0.90); `:percent` writes a ratio as a percentage."""
    path = tmp_path / "rules.yaml"
    reference = "${thresholds.system.cpu_usage.critical}"
    path.write_text(_RULE.format(thresholds=THRESHOLDS_FILE, reference=reference, summary=summary))
    (rule,) = load_rules(path, promtool=None)
    assert rule.expr == "max(video_active_users) > 0.90" and rule.summary == expected

"""Every shipped rule is proven to fire above its threshold and stay quiet below it: the exported Prometheus rules
(PromQL rules and the check rules' exported forms) by promtool's rule unit tests generated from the cases of
tests/integration/rule_cases/*.yaml, check rules in the monitor through CheckSource on in-memory objects."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from otel_monitor.instrument.failure_streaks import LocalFailureStreaks, RedisFailureStreaks
from otel_monitor.monitor.alerting.evaluate.lifecycle import render_summary
from otel_monitor.monitor.alerting.evaluate.sources import CheckSource, Sample, SourceError
from otel_monitor.monitor.alerting.export import prometheus_rule_groups
from otel_monitor.monitor.alerting.model import Rule
from otel_monitor.monitor.alerting.rules import HEALTH_CHECKS, load_rules
from otel_monitor.monitor.health.status import DEGRADED, HEALTHY, UNHEALTHY
from otel_monitor.monitor.quota.status import CRITICAL, EXCEEDED, WARNING
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
SHIPPED = ROOT / "config" / "alert-rules.yaml"
CASES = Path(__file__).resolve().parent / "rule_cases"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus) not installed")


class InputSeries(BaseModel):
    """One input series of promtool: its selector and its values in promtool's expanding notation."""

    model_config = ConfigDict(extra="forbid")

    series: str
    values: str


class RuleCase(BaseModel):
    """One case of rule_cases/*.yaml: series in, eval times where the rule fires and where it is quiet."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    interval: str = "1m"
    input_series: list[InputSeries] = Field(min_length=1)
    fires_at: list[str] = []
    labels: dict[str, str] = {}
    quiet_at: list[str] = []


def _load_cases() -> list[tuple[str, RuleCase]]:
    """(id, case) of every case file, in file order; an id is ``file#index Rule``."""
    cases = []
    for path in sorted(CASES.glob("*.yaml")):
        for index, raw in enumerate(yaml.safe_load(path.read_text()) or []):
            case = RuleCase.model_validate(raw)
            cases.append((f"{path.name}#{index} {case.rule}", case))
    return cases


CASE_LIST = _load_cases()
SHIPPED_RULES = load_rules(SHIPPED, promtool=None)
PROMQL_RULES = {rule.name: rule for rule in SHIPPED_RULES if rule.source == "promql"}
ALL_RULES = {rule.name: rule for rule in SHIPPED_RULES}
CHECK_RULES = {rule.name: rule for rule in SHIPPED_RULES if rule.source == "check"}


def prometheus_rules(rules: dict[str, Rule]) -> dict:
    """The rules as `otel-monitor export-rules` exports them, with ``for`` and ``keep_firing_for`` zeroed and
    evaluated every interval of the case: the cases prove conditions (thresholds); test_exported_timing proves the
    exported timing."""
    document = prometheus_rule_groups(list(rules.values()))
    for group in document["groups"]:
        group.pop("interval")
        for rule in group["rules"]:
            rule["for"] = rule["keep_firing_for"] = "0s"
    return document


def _active(rule: str, labels: dict[str, str]) -> str:
    """A PromQL expression that is 1 while exactly one alert of ``rule`` carrying ``labels`` is active (2 when a
    rule gives two series for one service, e.g. its own window and its low-traffic fallback both)."""
    matchers = ", ".join(
        f"{name}={json.dumps(value)}" for name, value in {"alertname": rule, "alertstate": "firing", **labels}.items()
    )
    return f"count(ALERTS{{{matchers}}})"


def promtool_test(case: RuleCase) -> dict:
    """promtool's unit-test document of one case: one alert firing where ``fires_at`` says (with ``labels``), no
    alert of the rule at all where ``quiet_at`` says. Rules are evaluated at every ``interval``."""
    return {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": case.interval,
        "tests": [
            {
                "interval": case.interval,
                "input_series": [series.model_dump() for series in case.input_series],
                "promql_expr_test": [
                    {
                        "expr": _active(case.rule, case.labels),
                        "eval_time": at,
                        "exp_samples": [{"labels": "{}", "value": 1}],
                    }
                    for at in case.fires_at
                ],
                "alert_rule_test": [
                    {"eval_time": at, "alertname": case.rule, "exp_alerts": []} for at in case.quiet_at
                ],
            }
        ],
    }


def run_promtool(tmp_path: Path, rules: dict[str, Rule], case: RuleCase) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(json.dumps(prometheus_rules(rules)))  # JSON is YAML, quoting safely
    (tmp_path / "test.yaml").write_text(json.dumps(promtool_test(case)))
    return subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


# -- PromQL rules ------------------------------------------------------------------------------------------------
@needs_promtool
@pytest.mark.parametrize("case", [pytest.param(case, id=case_id) for case_id, case in CASE_LIST])
def test_promql_rule_case(tmp_path, case):
    """The rule fires at each ``fires_at`` (carrying ``labels``) and no alert of it is active at each ``quiet_at``,
    evaluated by the real promtool on the case's series."""
    assert case.rule in ALL_RULES, f"no shipped rule {case.rule!r}"
    assert case.fires_at or case.quiet_at, "a case proves nothing without fires_at or quiet_at"
    result = run_promtool(tmp_path, ALL_RULES, case)
    assert result.returncode == 0, f"{ALL_RULES[case.rule].expr}\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("name", sorted(ALL_RULES))
def test_every_promql_rule_is_proven(name):
    """Each shipped rule (a check rule by its exported form) has a case that shows it firing and one time where it
    stays quiet (a new rule cannot ship unproven)."""
    proven = [case for _, case in CASE_LIST if case.rule == name and case.fires_at and case.quiet_at]
    assert proven, f"{name}: add a case with fires_at and quiet_at to tests/integration/rule_cases/"


@needs_promtool
@pytest.mark.parametrize("mistake", ["fires_at", "quiet_at", "labels"])
def test_the_harness_fails_a_wrong_case(tmp_path, mistake):
    """A case that expects the wrong thing (firing where the rule is quiet, quiet where it fires, a label the
    alert does not carry) fails: the harness is not vacuous."""
    rule = Rule(
        name="Above5",
        priority="P1",
        source="promql",
        expr="max by (service) (m) > 5",
        error_code="X",
        summary="s",
        action_required="a",
        runbook="r",
    )
    series = [InputSeries(series='m{service="gemini", instance="a"}', values="1 1 9 9 1 1")]
    right = {"fires_at": ["2m"], "quiet_at": ["1m", "4m"], "labels": {"service": "gemini"}}
    wrong = {
        "fires_at": {"fires_at": ["4m"]},
        "quiet_at": {"quiet_at": ["3m"]},
        "labels": {"labels": {"service": "stability"}},
    }[mistake]
    assert (
        run_promtool(tmp_path, {"Above5": rule}, RuleCase(rule="Above5", input_series=series, **right)).returncode == 0
    )
    assert (
        run_promtool(
            tmp_path, {"Above5": rule}, RuleCase(rule="Above5", input_series=series, **{**right, **wrong})
        ).returncode
        != 0
    )


@needs_promtool
def test_the_harness_fails_two_alerts_for_one_service(tmp_path):
    """A rule giving two series for one service (say a fallback branch that kept a label its own window sums away)
    fails a case expecting the service's alert, though each series alone is a correct alert."""
    series = [InputSeries(series=f'm{{service="gemini", instance="{instance}"}}', values="1 9 9") for instance in "ab"]
    case = RuleCase(rule="Above5", input_series=series, fires_at=["2m"], quiet_at=["0m"], labels={"service": "gemini"})
    for expr, passes in [("max by (service) (m) > 5", True), ("max by (service, instance) (m) > 5", False)]:
        rule = Rule(
            name="Above5",
            priority="P1",
            source="promql",
            expr=expr,
            error_code="X",
            summary="s",
            action_required="a",
            runbook="r",
        )
        assert (run_promtool(tmp_path, {"Above5": rule}, case).returncode == 0) is passes, expr


# -- check rules -------------------------------------------------------------------------------------------------
class HealthReport:
    """Answers fresh_report() like HealthService, with one check in the given status."""

    def __init__(self, check: str, status: str) -> None:
        self.report = {"status": status, "checks": {name: {"status": HEALTHY} for name in HEALTH_CHECKS}}
        self.report["checks"][check] = {"status": status}

    async def fresh_report(self, max_age: float) -> dict:
        return self.report


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def streaks_after(events: str, clock: Clock | None = None, service: str = "stability") -> LocalFailureStreaks:
    """Streaks after ``events``: ``F`` a failing call (trace ``t<index>``), ``S`` a successful one, ``+`` a minute
    passing."""
    clock = clock or Clock()
    streaks = LocalFailureStreaks(clock=clock)
    for index, event in enumerate(events):
        if event == "+":
            clock.now += 60
        else:
            streaks.record(service, failed=event == "F", trace_id=f"t{index}")
    return streaks


def _health(check: str, status: str) -> dict:
    return {"health_service": HealthReport(check, status)}


def _streaks(events: str) -> dict:
    return {"streaks": streaks_after(events)}


# (rule, what the source holds, the samples the rule must give); every shipped check rule fires in one row and is
# quiet in another.
CHECK_CASES = [
    ("DatabaseDown", _health("database", UNHEALTHY), [Sample({"check": "database"}, 1.0)]),
    ("DatabaseDown", _health("database", DEGRADED), []),
    ("RedisDown", _health("redis", UNHEALTHY), [Sample({"check": "redis"}, 1.0)]),
    ("RedisDown", _health("redis", DEGRADED), []),
    ("FfmpegMissing", _health("ffmpeg", UNHEALTHY), [Sample({"check": "ffmpeg"}, 1.0)]),
    ("FfmpegMissing", _health("ffmpeg", HEALTHY), []),
    ("CeleryWorkerDown", _health("celery", UNHEALTHY), [Sample({"check": "celery"}, 1.0)]),
    ("CeleryWorkerDown", _health("celery", DEGRADED), []),  # a long queue is P1, not a dead worker
    ("DiskSpaceInsufficient", _health("disk", UNHEALTHY), [Sample({"check": "disk"}, 1.0)]),
    ("DiskSpaceInsufficient", _health("disk", DEGRADED), []),  # < 20 % free is the P2 warning's
    ("ApiConsecutiveFailuresCritical", _streaks("F" * 11), [Sample({"service": "stability"}, 11.0, "t10")]),
    ("ApiConsecutiveFailuresCritical", _streaks("F" * 10), []),
    ("ApiConsecutiveFailuresCritical", _streaks("F" * 12 + "S"), [Sample({"service": "stability"}, 12.0, "t11")]),
    ("ApiConsecutiveFailuresCritical", _streaks("F" * 12 + "S+"), []),  # the ended streak's minute is over
    ("ApiConsecutiveFailuresCritical", _streaks("F" * 8 + "S" + "FFF"), []),  # a success breaks the row
    ("ApiConsecutiveFailures", _streaks("F" * 6), [Sample({"service": "stability"}, 6.0, "t5")]),
    ("ApiConsecutiveFailures", _streaks("F" * 5), []),
    ("ApiConsecutiveFailures", _streaks("F" * 7 + "S"), [Sample({"service": "stability"}, 7.0, "t6")]),
    ("ApiConsecutiveFailures", _streaks("F" * 7 + "SFF"), [Sample({"service": "stability"}, 7.0, "t6")]),
    ("ApiConsecutiveFailures", _streaks("F" * 7 + "S+FF"), []),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "name,objects,samples", [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(CHECK_CASES)]
)
async def test_check_rule_case(name, objects, samples):
    """The shipped check rule, evaluated by CheckSource on small in-memory objects, gives exactly these samples
    (above its threshold: one per failing check or provider; at or below it: none)."""
    assert await CheckSource(**objects).evaluate(CHECK_RULES[name]) == samples


@pytest.mark.parametrize("name", sorted(CHECK_RULES))
def test_every_check_rule_is_proven(name):
    """Each shipped check rule has a row where it fires and one where it stays quiet."""
    results = [bool(samples) for rule, _, samples in CHECK_CASES if rule == name]
    assert True in results and False in results, f"{name}: add rows to CHECK_CASES"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "usage,samples",
    [
        ({"gemini": (95.0, CRITICAL)}, [Sample({"service": "gemini"}, 5.0)]),
        ({"gemini": (100.0, EXCEEDED), "youtube": (85.0, WARNING)}, [Sample({"service": "gemini"}, 0.0)]),
        ({"gemini": (85.0, WARNING)}, []),
    ],
)
async def test_quota_check_fires_below_ten_percent_left(usage, samples):
    """``quota.*`` holds for each provider with less than 10 % left (value: percent left), not at 15 % left."""
    views = [SimpleNamespace(service=s, percentage=p, status=status) for s, (p, status) in usage.items()]
    rule = Rule(
        name="QuotaLow",
        priority="P1",
        source="check",
        expr="quota.*",
        error_code="QUOTA_LOW",
        summary="s",
        action_required="a",
        runbook="r",
    )
    assert await CheckSource(quota_service=SimpleNamespace(latest=lambda: views)).evaluate(rule) == samples


@pytest.mark.asyncio
async def test_streak_unknown_when_redis_is_away():
    """With the streaks' Redis unreachable the streak rules cannot be evaluated (SourceError: the alerts keep
    their state) rather than read as 0 and resolve a live P0."""
    import redis

    from tools.devstack import free_port

    client = redis.Redis(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    with pytest.raises(SourceError, match="failure streaks unavailable"):
        await CheckSource(streaks=RedisFailureStreaks(client)).evaluate(CHECK_RULES["ApiConsecutiveFailuresCritical"])


# -- the exported rules ------------------------------------------------------------------------------------------
def _raised_threshold(rule: Rule) -> Rule:
    """The rule edited to a wrong threshold: its trailing ``> N`` made ``> N+2``."""
    edited = re.sub(r">\s*(\d+)\s*$", lambda m: f"> {int(m[1]) + 2}", rule.expr.strip())
    assert edited != rule.expr.strip(), f"{rule.name}: no trailing threshold in {rule.expr!r}"
    return rule.model_copy(update={"expr": edited})


@needs_promtool
@pytest.mark.parametrize("name", ["GeminiInvalidApiKey", "ApiConsecutiveFailuresCritical"])
def test_a_rule_edited_to_a_wrong_threshold_fails_its_cases(tmp_path, name):
    """A shipped rule (PromQL, and a check rule's exported form) with its threshold raised fails at least one of its
    own cases, which pass as shipped: the cases prove thresholds, not just that the rule exists."""
    cases = [case for _, case in CASE_LIST if case.rule == name]
    assert cases and all(run_promtool(tmp_path, ALL_RULES, case).returncode == 0 for case in cases)
    edited = {**ALL_RULES, name: _raised_threshold(ALL_RULES[name])}
    assert any(run_promtool(tmp_path, edited, case).returncode != 0 for case in cases)


@needs_promtool
def test_exported_timing(tmp_path):
    """The exported ``keep_firing_for`` (clear_for_seconds) and ``for`` (for_seconds) act in promtool as the rules
    file says: the Gemini key alert stays firing 5 minutes after its condition cleared, then ends; a rule with
    ``for`` is pending before it fires."""
    gemini = ALL_RULES["GeminiInvalidApiKey"]
    delayed = Rule(**{**gemini.model_dump(), "name": "Delayed", "for_seconds": 120, "clear_for_seconds": 0})
    exported = prometheus_rule_groups([gemini, delayed])
    (tmp_path / "rules.yaml").write_text(json.dumps(exported))
    labels = {"service": "gemini", "severity": "critical", "priority": "P0", "error_code": gemini.error_code}
    alert = {"exp_labels": labels, "exp_annotations": exported["groups"][0]["rules"][0]["annotations"]}
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'external_api_errors_total{service="gemini", error_code="GEMINI_INVALID_API_KEY"}',
                        "values": "_ _ _ 1x20",  # first rejection at 3m: the condition holds until 8m
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "Delayed", "exp_alerts": []},  # pending
                    {"eval_time": "5m", "alertname": "Delayed", "exp_alerts": [alert]},
                    {"eval_time": "10m", "alertname": "Delayed", "exp_alerts": []},
                    {"eval_time": "12m", "alertname": "GeminiInvalidApiKey", "exp_alerts": [alert]},
                    {"eval_time": "14m", "alertname": "GeminiInvalidApiKey", "exp_alerts": []},
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(json.dumps(test))
    result = subprocess.run([PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize(("name", "spent"), [("BudgetSpent", 12.345678), ("BudgetSpent", 10.0)])
def test_exported_summary_renders_as_the_monitors(tmp_path, name, spent):
    """A summary with ``{{ $value | printf "%.2f" }}`` reads the same from Prometheus (promtool renders the
    exported annotation) as from the monitor's own evaluation: dollars and cents."""
    rule = ALL_RULES[name]
    labels = {"budget": "total", "period": "day"}
    exported = prometheus_rule_groups([rule])
    annotations = {
        **exported["groups"][0]["rules"][0]["annotations"],
        "summary": render_summary(rule.summary, labels, spent),
    }
    assert f"{spent:.2f} USD" in annotations["summary"]
    (tmp_path / "rules.yaml").write_text(json.dumps(exported))
    alert = {
        "exp_labels": {**labels, "severity": "critical", "priority": "P0", "error_code": rule.error_code},
        "exp_annotations": annotations,
    }
    series = [
        {"series": 'budget_spent_usd{budget="total", period="day"}', "values": f"{spent}x5"},
        {"series": 'budget_limit_usd{budget="total", period="day"}', "values": "10x5"},
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": "2m", "alertname": name, "exp_alerts": [alert]}],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(json.dumps(test))
    result = subprocess.run([PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

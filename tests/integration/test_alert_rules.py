"""The alert rules file: the shipped rules cover the requirements; invalid files are refused with file, line, key."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from otel_monitor.instrument.error_codes import (
    ApiErrorCode,
    ProviderFailure,
    SystemErrorCode,
    ThresholdErrorCode,
    defined_error_codes,
    provider_error_code,
)
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.monitor.alerting.evaluate.evaluator import DEFAULT_INTERVALS, default_interval
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.rules import PROMQL_PARSER, check_promql, is_known_check, load_rules, promql_checker
from otel_monitor.monitor.config_file import ConfigError
from tests.support.paths import REPO_ROOT, TESTDATA

ROOT = REPO_ROOT
SHIPPED = ROOT / "config" / "alert-rules.yaml"
RULES_TESTDATA = TESTDATA / "rules"
PROMTOOL = "/usr/bin/promtool"

needs_promtool = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool (Debian's prometheus) not installed")


@pytest.fixture(scope="module")
def shipped():
    """The shipped rules by name, PromQL checked by the real promtool."""
    return {rule.name: rule for rule in load_rules(SHIPPED, promtool=PROMTOOL)}


def _compact(expr: str) -> str:
    return re.sub(r"\s+", " ", expr).strip()


@needs_promtool
def test_shipped_rules_load_strictly(shipped):
    """The shipped file passes every check, promtool's included, and names each rule once."""
    assert len(shipped) >= 40


@needs_promtool
@pytest.mark.parametrize(
    "priority,error_codes",
    [
        (
            Priority.P0,
            {provider_error_code(key, ProviderFailure.INVALID_API_KEY) for key in SERVICE_KEYS}
            | {
                SystemErrorCode.DATABASE_CONNECTION_FAILED.value,
                SystemErrorCode.REDIS_CONNECTION_FAILED.value,
                SystemErrorCode.FFMPEG_NOT_FOUND.value,
                SystemErrorCode.CELERY_WORKER_DOWN.value,
                SystemErrorCode.DISK_SPACE_INSUFFICIENT.value,
                ApiErrorCode.API_CONSECUTIVE_FAILURES.value,
            },
        ),
        (
            Priority.P1,
            {provider_error_code(key, ProviderFailure.QUOTA_EXCEEDED) for key in SERVICE_KEYS}
            | {
                ApiErrorCode.API_CONSECUTIVE_FAILURES.value,
                ApiErrorCode.API_ERROR_RATE_HIGH.value,
                ThresholdErrorCode.PROJECT_SUCCESS_RATE_LOW.value,
                ThresholdErrorCode.CELERY_QUEUE_BACKLOG.value,
            },
        ),
    ],
)
def test_shipped_rules_cover_the_spec_lists(shipped, priority, error_codes):
    """Every condition of the required P0 and P1 lists has a rule of that priority."""
    assert error_codes <= {rule.error_code for rule in shipped.values() if rule.priority == priority}


def test_shipped_rules_use_only_defined_error_codes():
    """Every error_code of the shipped rules is one error_codes.py spells, so the two cannot drift. Only the
    shipped file is held to this: a user's rules file may add codes of its own, and check-config accepts them."""
    codes = {rule.error_code for rule in load_rules(SHIPPED, promtool=None)}
    assert codes - defined_error_codes(SERVICE_KEYS) == set()


@needs_promtool
@pytest.mark.parametrize(
    "name,priority,fragment",
    [
        # P0
        ("GeminiInvalidApiKey", "P0", 'error_code="GEMINI_INVALID_API_KEY"'),
        ("StabilityInvalidApiKey", "P0", 'error_code="STABILITY_INVALID_API_KEY"'),
        ("DIdInvalidApiKey", "P0", 'error_code="D_ID_INVALID_API_KEY"'),
        ("YoutubeInvalidApiKey", "P0", 'error_code="YOUTUBE_INVALID_API_KEY"'),
        ("DatabaseDown", "P0", "health.database"),
        ("RedisDown", "P0", "health.redis"),
        ("FfmpegMissing", "P0", "health.ffmpeg"),
        ("CeleryWorkerDown", "P0", "health.celery"),
        ("DiskSpaceInsufficient", "P0", "health.disk"),
        ("ApiConsecutiveFailuresCritical", "P0", "streak.* > 10"),
        ("ApiUnreachableFromOutside", "P0", 'min by (service) (probe_success{job="blackbox-http"}) == 0'),
        ("UptimeProbeMissing", "P0", '(min by (service) (up{job="blackbox-http"}) == 0)'),
        ("UptimeProbeMissing", "P0", 'max_over_time(up{job="blackbox-http"}[1h])'),
        # P1
        ("GeminiQuotaLow", "P1", "> 0.9"),
        ("StabilityQuotaLow", "P1", "> 0.9"),
        ("DIdQuotaLow", "P1", "> 0.9"),
        ("YoutubeQuotaLow", "P1", "> 0.9"),
        ("ApiConsecutiveFailures", "P1", "streak.* > 5"),
        ("ApiErrorRateHigh", "P1", '{outcome=~"error|timeout"}[15m])) / sum by (service)'),
        ("ApiErrorRateHigh", "P1", "> 0.10"),
        ("ProjectSuccessRateLow", "P1", "< 0.80"),
        ("CeleryQueueBacklog", "P1", "max(otel_monitor_health_celery_queue_length) > 50"),
        ("CeleryQueueCritical", "P1", "max(otel_monitor_health_celery_queue_length) > 100"),
        ("GeminiQuotaRefused", "P1", 'error_code="GEMINI_QUOTA_EXCEEDED"'),
        ("StabilityQuotaRefused", "P1", 'error_code="STABILITY_QUOTA_EXCEEDED"'),
        ("DIdQuotaRefused", "P1", 'error_code="D_ID_QUOTA_EXCEEDED"'),
        ("YoutubeQuotaRefused", "P1", 'error_code="YOUTUBE_QUOTA_EXCEEDED"'),
        ("YoutubeUploadLimitReached", "P1", 'error_code="YOUTUBE_UPLOAD_LIMIT_EXCEEDED"'),
        ("GeminiDailyQuotaExhausted", "P1", 'error_code="GEMINI_QUOTA_EXCEEDED"'),
        ("DIdCreditsExpiring", "P1", 'quota_credits_expiry_seconds{service="d-id"}) / 86400 < 7,'),
        ("GeminiModelDailyLimitLow", "P1", 'limit="requests per day"}[15m]) ) > 0.9'),
        ("GeminiRateLimited", "P2", 'error_code="GEMINI_RATE_LIMITED"'),
        ("StabilityRateLimited", "P2", 'error_code="STABILITY_RATE_LIMITED"'),
        # Per-service warnings of the metric tables
        ("GeminiSuccessRateLow", "P2", "< 0.90"),
        ("GeminiLatencyP50High", "P2", "histogram_quantile(0.5,"),
        ("GeminiLatencyP50High", "P2", ") > 5"),
        ("GeminiLatencyP90High", "P2", ") > 10"),
        ("GeminiLatencyP99High", "P2", ") > 20"),
        ("GeminiRetriesHigh", "P2", "> 1.0"),
        ("StabilitySuccessRateLow", "P2", "< 0.85"),
        ("StabilityLatencyP50High", "P2", ") > 10"),
        ("StabilityLatencyP90High", "P2", ") > 30"),
        ("StabilityPartialFailuresHigh", "P2", "> 0.10"),
        ("DIdSuccessRateLow", "P2", "< 0.85"),
        ("DIdLatencyP50High", "P2", ") > 90"),
        ("DIdLatencyP90High", "P2", ") > 120"),
        ("DIdTimeoutsHigh", "P2", "> 0.10"),
        ("YoutubeUploadSuccessRateLow", "P2", "< 0.90"),
        ("YoutubeUploadSlow", "P2", "> 600"),
        ("YoutubeTokenRefreshFailing", "P2", "< 0.95"),
        # System and business thresholds
        ("DiskSpaceLow", "P2", "< 0.20 >= 0.10"),
        ("CpuUsageCritical", "P1", "> 0.90"),
        ("CpuUsageHigh", "P2", "> 0.80 <= 0.90"),
        ("MemoryUsageCritical", "P1", "> 0.90"),
        ("MemoryUsageHigh", "P2", "> 0.80 <= 0.90"),
        ("DatabaseConnectionsCritical", "P1", "> 95"),
        ("DatabaseConnectionsHigh", "P2", "> 80 <= 95"),
        ("ProjectGenerationSlow", "P2", "> 1200"),
        ("ActiveUsersDeclining", "P2", "max(video_active_users offset 2d) < 0.8 * max(video_active_users offset 3d)"),
        ("QuotaUsageWarning", "P2", ">= 0.8 <= 0.9"),
    ],
)
def test_shipped_rule_uses_the_spec_threshold(shipped, name, priority, fragment):
    """Each required rule is shipped with its priority and exactly the required number."""
    rule = shipped[name]
    assert rule.priority.value == priority
    assert fragment in _compact(rule.expr)


@needs_promtool
@pytest.mark.parametrize(
    "name,inhibitors",
    [
        ("ApiConsecutiveFailuresCritical", {"DatabaseDown", "RedisDown"}),
        ("ApiConsecutiveFailures", {"ApiConsecutiveFailuresCritical", "DatabaseDown", "RedisDown"}),
        ("ApiErrorRateHigh", {"DatabaseDown", "RedisDown"}),
        ("ProjectSuccessRateLow", {"DatabaseDown", "RedisDown"}),
        ("CeleryWorkerDown", {"RedisDown"}),  # Redis is the broker: no worker consumes while it is down
        ("CeleryQueueBacklog", {"CeleryQueueCritical", "CeleryWorkerDown", "RedisDown"}),
        ("CeleryQueueCritical", {"CeleryWorkerDown", "RedisDown"}),
        ("GeminiQuotaRefused", {"GeminiDailyQuotaExhausted"}),  # the per-limit alert says which limit
    ],
)
def test_downstream_rules_are_inhibited_by_their_cause(shipped, name, inhibitors):
    """An alert is held back while its cause fires: API streaks, error rates and project failures by the database or
    Redis down, a worker by its broker, the lower level of a threshold by the higher one."""
    assert inhibitors <= set(shipped[name].inhibited_by)


@needs_promtool
@pytest.mark.parametrize("name", ["ApiConsecutiveFailuresCritical", "ApiConsecutiveFailures"])
def test_streak_rules_need_no_opt_in_and_run_at_the_p0_cadence(shipped, name):
    """The consecutive-failure rules read the monitor's own streak checks (Redis, shared by every backend process;
    no gauge a backend must opt in to export) every 5 seconds, whatever their priority."""
    rule = shipped[name]
    assert rule.source == "check" and rule.expr.startswith("streak.*")
    assert default_interval(rule) == DEFAULT_INTERVALS[Priority.P0]


# Rules computed over the calls of a window, and the guard and low-traffic fallback they must carry, as the rules
# file's header states them (read from there: the header is the one place of the numbers).
_WINDOWED = re.compile(r"rate\(|histogram_quantile\(")
_GUARD = re.compile(
    r"^(?:sum|sum by \(service\)) \(increase\([a-z_]+(?:\{[^}]*\})?\[(?P<window>\w+)\]\)\) "
    r">= (?P<calls>\d+)$"
)
_HEADER = "\n".join(line for line in SHIPPED.read_text().splitlines() if line.startswith("#"))
_STATED = {
    "calls": r"at least (\d+) calls",
    "youtube_calls": r"YouTube: at least (\d+)",
    "fallback_window": r"fallback window of (\d+[mhd]),",
}


def _stated(fact: str) -> str:
    """What the header states for ``fact`` (its first statement; a test below requires exactly one)."""
    return (re.findall(_STATED[fact], _HEADER) or ["0"])[0]


MIN_CALLS, MIN_YOUTUBE_CALLS, FALLBACK_WINDOW = (
    int(_stated("calls")),
    int(_stated("youtube_calls")),
    _stated("fallback_window"),
)
_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def _seconds(window: str) -> int:
    return int(window[:-1]) * _SECONDS[window[-1]]


def _split_top_level(expr: str, operator: str) -> list[str]:
    """``expr`` cut at each ``operator`` (``or``, ``and``, ``unless``) outside parentheses."""
    parts, depth, start, token = [], 0, 0, f" {operator} "
    for index, char in enumerate(expr):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and expr.startswith(token, index):
            parts.append(expr[start:index])
            start = index + len(token)
    return [part.strip() for part in parts + [expr[start:]]]


def _unwrap(expr: str) -> str:
    """``expr`` without parentheses that enclose all of it."""
    while expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
        expr = expr[1:-1].strip()
    return expr


def _balanced(expr: str) -> bool:
    """Whether no parenthesis of ``expr`` closes one it did not open, and all it opens close."""
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _windows(expr: str) -> set[str]:
    return set(re.findall(r"\[(\w+)\]", expr))


def _guard(expr: str, calls: int) -> str:
    """The window of a minimum-traffic guard ``sum (increase(...[window])) >= calls``; fails on anything else."""
    guard = _GUARD.match(expr)
    assert guard, f"not a minimum-traffic guard: {expr}"
    assert int(guard["calls"]) == calls, expr
    return guard["window"]


@pytest.mark.parametrize("fact", sorted(_STATED))
def test_the_header_states_the_guard_and_the_fallback_once(fact):
    """The rules file's header states the minimum traffic (and YouTube's) and the fallback window exactly once:
    the rules' copies are checked against it."""
    assert len(re.findall(_STATED[fact], _HEADER)) == 1, f"{fact}: stated {re.findall(_STATED[fact], _HEADER)}"


@needs_promtool
def test_every_windowed_rate_rule_has_the_minimum_traffic_guard(shipped):
    """Each rule computed from the calls of a window (rates, quantiles, averages) requires the header's minimum of
    calls in that window (YouTube its own, its default quota allowing 6 uploads a day), the window of its own rates;
    a rule whose window is shorter than the fallback window also evaluates the very same condition, threshold and
    guard over the fallback window, exactly when its own window holds too few calls."""
    windowed = [
        rule
        for rule in shipped.values()
        if rule.source == "promql"
        and _WINDOWED.search(rule.expr)
        and "increase(external_api_errors_total" not in rule.expr  # refusals count events, not a rate
        and "otel_monitor_telemetry_dropped_total" not in rule.expr
        # forecasts over spend and quota gauges, guarded by a minimum spend / usage (their promtool cases prove it)
        and "budget_spent_usd" not in rule.expr
        and "quota_used" not in rule.expr
    ]
    assert len(windowed) >= 19
    with_fallback = 0
    for rule in windowed:
        calls = MIN_YOUTUBE_CALLS if rule.labels.get("service") == "youtube" else MIN_CALLS
        branches = [_unwrap(branch) for branch in _split_top_level(_compact(rule.expr), "or")]
        own = _split_top_level(branches[0], "and")
        assert len(own) == 2, f"{rule.name}: no minimum-traffic guard"
        condition, window = own[0], _guard(own[1], calls)
        assert _windows(condition) == {window}, f"{rule.name}: the guard's window is not the rule's"
        if _seconds(window) >= _seconds(FALLBACK_WINDOW):
            assert len(branches) == 1, f"{rule.name}: a {window} window needs no fallback"
            continue
        assert len(branches) == 2, f"{rule.name}: no low-traffic fallback over {FALLBACK_WINDOW}"
        fallback, own_guard = _split_top_level(branches[1], "unless")
        assert _guard(own_guard, calls) == window, f"{rule.name}: the fallback must hold only at low traffic"
        fallback_condition, fallback_guard = _split_top_level(fallback, "and")
        assert _guard(fallback_guard, calls) == FALLBACK_WINDOW, rule.name
        assert fallback_condition == condition.replace(f"[{window}]", f"[{FALLBACK_WINDOW}]"), (
            f"{rule.name}: the fallback's condition is not the rule's own over {FALLBACK_WINDOW}"
        )
        with_fallback += 1
    assert with_fallback >= 16


@needs_promtool
def test_every_rule_tells_the_operator_what_to_do(shipped):
    """Each rule carries a summary, an action and a runbook; a rule of one provider says which."""
    for rule in shipped.values():
        assert rule.summary and rule.action_required and rule.runbook, rule.name
        provider_named = re.search(r'service="([a-z-]+)"', rule.expr)
        if provider_named:
            assert rule.labels.get("service") == provider_named.group(1), rule.name


@needs_promtool
def test_invalid_key_action_names_the_environment_variable(shipped):
    """The P0 invalid-key message says which variable to check, as in the required example."""
    assert shipped["GeminiInvalidApiKey"].action_required == "Check GEMINI_API_KEY in environment variables"


@pytest.mark.parametrize(
    "fixture,line,key,message",
    [
        ("unknown_key.yaml", 10, "rules.0.severity", "unknown key"),
        ("bad_for_seconds.yaml", 6, "rules.0.for_seconds", "valid number"),
        ("negative_clear_for_seconds.yaml", 6, "rules.0.clear_for_seconds", "greater than or equal to 0"),
        ("bad_priority.yaml", 3, "rules.0.priority", "'P0', 'P1' or 'P2'"),
        ("duplicate_name.yaml", 10, "rules.1.name", "duplicate rule name 'RedisDown' (first at line 2)"),
        ("unknown_inhibited_by.yaml", 19, "rules.1.inhibited_by.1", "unknown rule 'DatabaseDown'"),
        ("unknown_check.yaml", 5, "rules.0.expr", "unknown check 'health.postgres'"),
        ("unknown_quota_check.yaml", 5, "rules.0.expr", "unknown check 'quota.openai'"),
        pytest.param("bad_promql.yaml", 11, "rules.1.expr", "unclosed left parenthesis", marks=needs_promtool),
        pytest.param("bad_promql_block.yaml", 6, "rules.0.expr", "expected type range vector", marks=needs_promtool),
        pytest.param("bad_promql_literal.yaml", 6, "rules.0.expr", "expected type range vector", marks=needs_promtool),
    ],
)
def test_invalid_rules_file_names_file_line_and_key(fixture, line, key, message):
    """Each invalid fixture is refused with exactly one problem: FILE:LINE: KEY: what is wrong."""
    path = RULES_TESTDATA / fixture
    with pytest.raises(ConfigError) as raised:
        load_rules(path, promtool=PROMTOOL)
    (problem,) = raised.value.problems
    assert (problem.line, problem.key) == (line, key)
    assert message in problem.message
    assert str(problem).startswith(f"{path}:{line}: {key}: ")


@pytest.mark.parametrize(
    "fixture,line,key,message",
    [
        ("bad_promql.yaml", 11, "rules.1.expr", "unclosed left parenthesis"),
        ("bad_promql_block.yaml", 4, "rules.0.expr", "expected type matrix in call to function 'rate'"),
        ("bad_promql_literal.yaml", 4, "rules.0.expr", "expected type matrix in call to function 'rate'"),
    ],
)
def test_without_promtool_the_promql_parser_still_refuses_bad_promql(fixture, line, key, message):
    """Without the promtool binary, the promql-parser package checks PromQL: a bad expression is still refused,
    at its rule's expr line (the parser gives no position within it)."""
    with pytest.raises(ConfigError) as raised:
        load_rules(RULES_TESTDATA / fixture, promtool="otel-monitor-no-such-promtool")
    (problem,) = raised.value.problems
    assert (problem.line, problem.key) == (line, key)
    assert problem.message.startswith("invalid PromQL: ") and message in problem.message


def test_without_promtool_the_shipped_rules_pass_the_promql_parser():
    """Every PromQL expression of the shipped rules parses with the promql-parser package (promtool's stand-in)."""
    assert promql_checker("otel-monitor-no-such-promtool") == PROMQL_PARSER
    assert load_rules(SHIPPED, promtool="otel-monitor-no-such-promtool")


def test_promql_check_can_be_skipped_explicitly():
    """promtool=None skips only the PromQL check; the other checks still run."""
    assert len(load_rules(RULES_TESTDATA / "bad_promql.yaml", promtool=None)) == 2
    with pytest.raises(ConfigError):
        load_rules(RULES_TESTDATA / "unknown_check.yaml", promtool=None)


@needs_promtool
def test_check_promql_maps_each_error_to_its_index():
    """Several bad expressions are all reported, each under the index it was given."""
    failures = check_promql({3: "up == 1", 7: "rate(up)", 9: "sum(up"}, PROMTOOL)
    assert [index for index, _ in failures] == [7, 9]


@pytest.mark.parametrize(
    "check,known",
    [
        ("health.database", True),
        ("health.redis", True),
        ("health.celery", True),
        ("health.disk", True),
        ("health.ffmpeg", True),
        ("quota.d-id", True),
        ("streak.gemini", True),
        ("quota.d_id", False),
        ("health.postgres", False),
        ("streak.openai", False),
        ("streak.*", True),
        ("quota.*", True),
        ("streak.gemini > 5", True),
        ("quota.gemini > 5", False),
        ("health.*", False),
        ("health.redis extra", False),
    ],
)
def test_known_checks(check, known):
    """Check rules may name the health checks and, per provider key or *, its quota and streak (streak: '> N')."""
    assert is_known_check(check) is known


def _shipped_promql() -> list[pytest.param]:
    rules = load_rules(SHIPPED, promtool=None)
    return [pytest.param(rule.expr, id=rule.name) for rule in rules if rule.source == "promql"]


@pytest.mark.stack
@pytest.mark.parametrize("expr", _shipped_promql())
def test_shipped_promql_parses_in_prometheus(stack, expr):
    """Each shipped PromQL expression is accepted by the real Prometheus (a parse error is HTTP 400 bad_data)."""
    response = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    assert response.status_code == 200, f"{expr}\n-> {response.text}"
    assert response.json()["status"] == "success"

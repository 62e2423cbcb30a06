"""The `otel-monitor` command: check-config names file, line and key with exit 2; serve answers health and quota."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from examples.demo_backend.launcher import DEMO_SECRETS
from examples.monitor_launcher import MonitorProcess
from otel_monitor import __version__
from otel_monitor.monitor.alerting.model import Priority, Rule
from otel_monitor.monitor.config import AlertingConfig, MonitorConfig, unreachable_alerts, untracked_signals
from tests.support.backends import prom_values
from tests.support.health import LATENCY_NOT_JUDGED
from tools.devstack import ManagedProcess, wait_until
from tools.devstack.processes import http_ok
from tools.devstack.stack import REPO_ROOT

INVALID = REPO_ROOT / "tests" / "testdata" / "config"
SHIPPED_RULES = REPO_ROOT / "config" / "alert-rules.yaml"
# The CLI in a process where the promql-parser package cannot be imported (as if it were not installed).
WITHOUT_PROMQL_PARSER = (
    "import sys; sys.modules['promql_parser'] = None; from otel_monitor.monitor.cli import main; sys.exit(main())"
)


def otel_monitor(
    *args: str,
    env: dict | None = None,
    python: tuple[str, ...] = ("-m", "otel_monitor.monitor.cli"),
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *python, *args], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60
    )


def path_without(binary: str) -> str:
    """This process's PATH less every directory holding ``binary``."""
    return os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / binary).exists()
    )


def environment_without_promtool() -> dict[str, str]:
    path = path_without("promtool")
    assert shutil.which("promtool", path=path) is None
    return {**os.environ, "PATH": path}


@pytest.mark.parametrize(
    "fixture,expected",
    [
        ("unknown_key.yaml", "unknown_key.yaml:5: health.redis_ulr: unknown key"),
        ("bad_port.yaml", "bad_port.yaml:3: server.port: Input should be less than or equal to 65535"),
        ("bad_timezone.yaml", "bad_timezone.yaml:5: quota.youtube.reset.timezone: Value error, unknown IANA time zone"),
        ("bad_store_url.yaml", "bad_store_url.yaml:3: quota.store_url: Value error, not a SQLAlchemy database URL"),
        ("bad_environment.yaml", "bad_environment.yaml:1: environment: Input should be 'development'"),
        ("bad_yaml.yaml", "bad_yaml.yaml:3: invalid YAML"),
        (
            "bad_rules_reference.yaml",
            "tests/testdata/rules/unknown_inhibited_by.yaml:19: rules.1.inhibited_by.1: unknown rule",
        ),
        (
            "alerting_without_p0_route.yaml",
            "alerting_without_p0_route.yaml:8: alerting.delivery.routing.P0: alerting is enabled but no channel "
            "is routed for P0, so every P0 alert would reach nobody",
        ),
        (
            "alerting_with_empty_p0_route.yaml",
            "alerting_with_empty_p0_route.yaml:9: alerting.delivery.routing.P0: alerting is enabled but no channel",
        ),
        (
            "alerting_without_delivery.yaml",
            "alerting_without_delivery.yaml:3: alerting.delivery.routing.P0: alerting is enabled but no channel",
        ),
        (
            "alerting_without_p1_route.yaml",
            "alerting_without_p1_route.yaml:8: alerting.delivery.routing.P1: 1 P1 rule(s) but no channel routed for P1",
        ),
        (
            "alerting_without_p2_route.yaml",
            "alerting_without_p2_route.yaml:8: alerting.delivery.routing.P2: 1 P2 rule(s) but no channel routed for P2",
        ),
        (
            "alerting_without_rules_file.yaml",
            "alerting_without_rules_file.yaml:2: alerting.rules_file: alerting is enabled but names no rules file",
        ),
        (
            "alerting_with_empty_rules_file.yaml",
            "alerting_with_empty_rules_file.yaml:4: alerting.rules_file: alerting is enabled but names no rules file",
        ),
        (
            "alerting_with_no_rules.yaml",
            "alerting_with_no_rules.yaml:4: alerting.rules_file: the rules file has no rules",
        ),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_invalid_config_names_file_line_and_key_and_exits_2(command, fixture, expected):
    """check-config and serve refuse an invalid file with the same FILE:LINE: KEY: message and exit status 2."""
    path = str(INVALID / fixture)
    result = otel_monitor(*(["check-config", path] if command == "check-config" else ["serve", "--config", path]))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_shipped_example_config_is_valid():
    """examples/monitor.yaml passes check-config, with the shipped alert rules it names, without a warning."""
    result = otel_monitor("check-config", "examples/monitor.yaml")
    assert result.returncode == 0, result.stderr
    assert "alert rules" in result.stdout
    assert "warning" not in result.stderr


def test_version_is_the_packages():
    """otel-monitor --version prints the version of the installed package, the one otel_monitor.__version__ has."""
    result = otel_monitor("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"otel-monitor {__version__}"


def _rule(name: str, priority: Priority, expr: str = "up == 0", source: str = "promql") -> Rule:
    return Rule(
        name=name,
        priority=priority,
        source=source,
        expr=expr,
        error_code="SOME_ERROR",
        summary="s",
        action_required="a",
        runbook="r",
    )


ONE_OF_EACH = [_rule("Zero", Priority.P0), _rule("One", Priority.P1), _rule("Two", Priority.P2)]
CONSOLE = {"console": {"type": "console"}}


@pytest.mark.parametrize(
    "alerting,rules,expected",
    [
        ({"enabled": False}, [], []),
        (
            {
                "enabled": True,
                "rules_file": "r.yaml",
                "delivery": {"channels": CONSOLE, "routing": {"P0": ["console"], "P1": ["console"], "P2": ["console"]}},
            },
            ONE_OF_EACH,
            [],
        ),
        (
            {
                "enabled": True,
                "rules_file": "r.yaml",
                "delivery": {"channels": CONSOLE, "routing": {"P0": ["console"], "P1": [], "P2": []}},
            },
            ONE_OF_EACH,
            [],
        ),
        (
            {
                "enabled": True,
                "rules_file": "r.yaml",
                "delivery": {"channels": CONSOLE, "routing": {"P0": ["console"]}},
            },
            ONE_OF_EACH[:1],
            [],
        ),
        (
            {
                "enabled": True,
                "rules_file": "r.yaml",
                "delivery": {"channels": CONSOLE, "routing": {"P0": ["console"]}},
            },
            ONE_OF_EACH,
            ["alerting.delivery.routing.P1", "alerting.delivery.routing.P2"],
        ),
        (
            {"enabled": True, "rules_file": "r.yaml", "delivery": {"channels": CONSOLE, "routing": {"P0": []}}},
            ONE_OF_EACH[:1],
            ["alerting.delivery.routing.P0"],
        ),
        ({"enabled": True, "rules_file": "r.yaml"}, [], ["alerting.rules_file", "alerting.delivery.routing.P0"]),
        ({"enabled": True}, None, ["alerting.rules_file", "alerting.delivery.routing.P0"]),
        ({"enabled": True, "rules_file": "r.yaml"}, None, ["alerting.delivery.routing.P0"]),
    ],
    ids=[
        "off",
        "all routed",
        "P1 and P2 to none on purpose",
        "only P0 rules",
        "P1 and P2 unrouted",
        "P0 to none",
        "no rules",
        "no rules file",
        "rules file did not load",
    ],
)
def test_alerts_that_would_reach_nobody_are_found(alerting, rules, expected):
    """With alerting on, no P0 channel, no rules, or a priority with rules and no routing (not even an explicit
    `[]`) is found, each at its key; P1/P2 routed to none on purpose are accepted."""
    found = unreachable_alerts(AlertingConfig.model_validate(alerting), rules)
    assert [".".join(loc) for loc, _message in found] == expected


STREAK = _rule("GeminiStreak", Priority.P0, "streak.gemini", source="check")


DAILY_BUDGET = {"daily": {"total": 20}}


@pytest.mark.parametrize(
    "redis_url,enabled,rules,budgets,expected",
    [
        ("redis://127.0.0.1:6379/0", True, [STREAK], DAILY_BUDGET, []),
        (None, False, [STREAK], {}, ["Gemini and YouTube quotas cannot be tracked"]),
        (None, True, ONE_OF_EACH, {}, ["Gemini and YouTube quotas cannot be tracked"]),
        (
            None,
            True,
            [STREAK, *ONE_OF_EACH],
            {},
            ["Gemini and YouTube quotas cannot be tracked", "rules GeminiStreak (streak.*) can never fire"],
        ),
        (
            None,
            False,
            [],
            DAILY_BUDGET,
            ["Gemini and YouTube quotas cannot be tracked", "budgets are set but never watched"],
        ),
    ],
)
def test_untracked_quotas_and_streaks_are_named_with_the_setting(redis_url, enabled, rules, budgets, expected):
    """Without quota.redis_url, Gemini/YouTube quotas and streak.* rules cannot be read: each is a warning that
    names quota.redis_url (streak rules only when alerting evaluates them; budgets only when set)."""
    config = MonitorConfig.model_validate(
        {"quota": {"redis_url": redis_url}, "alerting": {"enabled": enabled}, "budgets": budgets}
    )
    found = untracked_signals(config, rules)
    assert len(found) == len(expected)
    assert all(message.startswith(start) for (_loc, message), start in zip(found, expected, strict=False))
    assert all(loc == ("quota", "redis_url") and "set quota.redis_url" in message for loc, message in found)


@pytest.mark.parametrize(
    "sections,key,expected",
    [
        ({"quota": {"store_url": "sqlite:///quota.db"}}, "store_url", "sqlite:///quota.db"),
        (
            {"quota": {"store_url": "sqlite:///quota.db"}, "alerting": {"store_url": "sqlite:///alerts.db"}},
            "store_url",
            "sqlite:///alerts.db",
        ),
        (
            {"alerting": {"prometheus_url": "http://prometheus:9090"}},
            "summary_prometheus_url",
            "http://prometheus:9090",
        ),
        (
            {
                "alerting": {
                    "prometheus_url": "http://prometheus:9090",
                    "daily_summary": {"prometheus_url": "http://long-term:9090"},
                }
            },
            "summary_prometheus_url",
            "http://long-term:9090",
        ),
    ],
    ids=["stores in the quota store", "stores named", "summary reads the rules' Prometheus", "summary's own"],
)
def test_defaults_that_follow_other_settings_are_resolved_at_load(sections, key, expected):
    """The alerting stores default to the quota store's database and the daily summary's Prometheus to the rules'
    one: both are final on the loaded config, whatever the wiring reads."""
    alerting = MonitorConfig.model_validate(sections).alerting
    resolved = {"store_url": alerting.store_url, "summary_prometheus_url": alerting.daily_summary.prometheus_url}
    assert resolved[key] == expected


@pytest.mark.parametrize(
    "variable,value,key,expected",
    [
        ("OTEL_MONITOR_SERVICE_NAME", "from-variable", "service_name", "otel-monitor"),
        ("OTEL_SERVICE_NAME", "from-variable", "service_name", "otel-monitor"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "otlp_endpoint", "http://127.0.0.1:4318"),
        ("OTEL_MONITOR_EXPORT_TIMEOUT_SECONDS", "5", "export_timeout_seconds", 5.0),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096", "span_queue_size", 4096),
    ],
)
def test_the_config_files_telemetry_section_wins_over_the_environment(monkeypatch, variable, value, key, expected):
    """The monitor's telemetry settings come from its config file first; the environment fills only what the file
    has no key for."""
    monkeypatch.setenv(variable, value)
    assert getattr(MonitorConfig().telemetry_settings(), key) == expected


def _alerting_config(tmp_path: Path, rules_file: Path, routing: dict, **sections) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **sections,
                "alerting": {
                    "enabled": True,
                    "rules_file": str(rules_file),
                    "delivery": {"channels": CONSOLE, "routing": routing},
                },
            },
            sort_keys=False,
        )
    )
    return path


def test_priorities_routed_to_none_on_purpose_pass_check_config(tmp_path):
    """`P1: []` and `P2: []` say on purpose that those alerts go nowhere: check-config accepts it."""
    path = _alerting_config(
        tmp_path, INVALID / "rules" / "one_per_priority.yaml", {"P0": ["console"], "P1": [], "P2": []}
    )
    result = otel_monitor("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "(3 alert rules, PromQL checked by promtool)" in result.stdout


def test_check_config_warns_of_untracked_quotas_and_streaks(tmp_path):
    """check-config passes a config without quota.redis_url, but warns on stderr, at that key's line, that
    Gemini/YouTube quotas and the shipped streak.* rules cannot be read."""
    routing = {"P0": ["console"], "P1": ["console"], "P2": ["console"]}
    path = _alerting_config(tmp_path, SHIPPED_RULES, routing, quota={"redis_url": None})
    result = otel_monitor("check-config", str(path))
    assert result.returncode == 0, result.stderr
    line = path.read_text().splitlines().index("  redis_url: null") + 1
    warnings = [w for w in result.stderr.splitlines() if w.startswith("otel-monitor: warning: ")]
    assert len(warnings) == 2
    assert all(f"{path}:{line}: quota.redis_url: " in w for w in warnings)
    assert "Gemini and YouTube quotas cannot be tracked" in warnings[0]
    assert "(streak.*) can never fire" in warnings[1]


@pytest.mark.parametrize(
    "fixture,outcome",
    [
        ("examples/monitor.yaml", "alert rules, PromQL checked by promql-parser)"),
        ("tests/testdata/config/bad_promql_reference.yaml", "rules.1.expr: invalid PromQL: unclosed left parenthesis"),
    ],
)
def test_check_config_without_promtool_checks_promql_with_the_parser(fixture, outcome):
    """With no promtool on the PATH, check-config still checks PromQL (promql-parser): valid rules pass, saying
    which checker ran, and a bad expression is refused with exit 2 at its rule."""
    result = otel_monitor("check-config", fixture, env=environment_without_promtool())
    assert result.returncode == (0 if "checked by" in outcome else 2), result.stderr
    assert outcome in (result.stdout + result.stderr)


def test_check_config_without_promtool_or_parser_warns_and_passes():
    """With neither promtool nor promql-parser, check-config passes but warns that PromQL was not validated."""
    result = otel_monitor(
        "check-config",
        "tests/testdata/config/bad_promql_reference.yaml",
        env=environment_without_promtool(),
        python=("-c", WITHOUT_PROMQL_PARSER),
    )
    assert result.returncode == 0, result.stderr
    assert (
        "alerting.rules_file: PromQL of the rules was not validated: install Prometheus' promtool or the "
        "promql-parser package" in result.stderr
    )
    assert "OK (2 alert rules)" in result.stdout


def _log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.stack
@pytest.mark.parametrize("parser", [True, False], ids=["promql-parser", "no PromQL checker"])
def test_serve_starts_without_promtool_and_warns_of_what_it_cannot_see(stack, tmp_path, parser):
    """`serve` with the shipped rules and no promtool on the PATH starts (/livez 200), and logs at WARNING, naming
    the setting to change, that Gemini/YouTube quotas and streak rules need quota.redis_url, and, with no
    promql-parser either, that PromQL was not validated."""
    monitor = MonitorProcess(stack, tmp_path, quota={"redis_url": None})
    monitor.config["alerting"] = {
        "enabled": True,
        "rules_file": str(SHIPPED_RULES),
        "prometheus_url": stack.prometheus_url,
        "delivery": {
            "channels": {"log": {"type": "log_file"}},
            "routing": {"P0": ["log"], "P1": ["log"], "P2": ["log"]},
        },
    }
    monitor.config_path.write_text(yaml.safe_dump(monitor.config, sort_keys=False))
    python = ["-m", "otel_monitor.monitor.cli"] if parser else ["-c", WITHOUT_PROMQL_PARSER]
    process = ManagedProcess(
        "otel-monitor",
        [sys.executable, *python, "serve", "--config", str(monitor.config_path)],
        tmp_path / "monitor.out",
        env={"PATH": environment_without_promtool()["PATH"]},
        cwd=REPO_ROOT,
        ready=http_ok(f"{monitor.url}/livez"),
    )
    process.start()
    try:
        assert httpx.get(f"{monitor.url}/livez", timeout=5).status_code == 200
        warnings = wait_until(
            lambda: [
                line
                for line in _log_lines(tmp_path / "logs" / "app.log")
                if line["level"] == "warning" and line["logger"] == "otel_monitor.cli"
            ],
            10,
            what="the start-up warnings",
        )
    finally:
        process.stop()
    assert {line["setting"] for line in warnings} == {"quota.redis_url"} | (
        set() if parser else {"alerting.rules_file"}
    )
    messages = " ".join(line["message"] for line in warnings)
    assert "Gemini and YouTube quotas cannot be tracked" in messages and "set quota.redis_url" in messages
    assert "(streak.*) can never fire" in messages
    assert ("PromQL of the rules was not validated" in messages) is not parser


@pytest.fixture
def monitor(stack, fakes, tmp_path):
    """`otel-monitor serve` against the stack's PostgreSQL and Redis and the fake D-ID and Stability."""
    for service in ("d-id", "stability"):
        fakes.set_fault(service, mode="ok")
    process = MonitorProcess(
        stack,
        tmp_path,
        service_name="monitor-under-test",
        health={"celery_queues": ["no-worker-consumes-this"], "check_timeout_seconds": 2, **LATENCY_NOT_JUDGED},
        quota={
            "d_id": {"base_url": fakes.base_url("d-id"), "api_key": "${DID_API_KEY}"},
            "stability": {"base_url": fakes.base_url("stability"), "api_key": "${STABILITY_API_KEY}", "baseline": 100},
        },
        env={"DID_API_KEY": DEMO_SECRETS["did_api_key"], "STABILITY_API_KEY": DEMO_SECRETS["stability_api_key"]},
    )
    with process:
        yield process.url, tmp_path


@pytest.mark.stack
def test_serve_answers_health_and_quota_and_exports_their_metrics(monitor, stack):
    """The served API answers the required health and quota shapes; its gauges reach Prometheus via the collector."""
    url, workdir = monitor
    health = httpx.get(f"{url}/api/v1/system/health", timeout=10)
    body = health.json()
    assert set(body) == {"status", "timestamp", "checks", "replica"} and body["timestamp"].endswith("Z")
    # one monitor, no replicas: it leads, named hostname:pid
    assert (body["replica"]["leader"], body["replica"]["ha"]) == (True, False)
    assert body["replica"]["id"].startswith(f"{socket.gethostname()}:")
    assert set(body["checks"]) == {"database", "redis", "celery", "disk", "ffmpeg"}
    assert {k: body["checks"][k]["status"] for k in ("database", "redis", "ffmpeg")} == {
        "database": "healthy",
        "redis": "healthy",
        "ffmpeg": "healthy",
    }
    assert body["checks"]["celery"]["status"] == "unhealthy"  # nobody consumes the configured queue
    assert (health.status_code, body["status"]) == (503, "unhealthy")

    quota = wait_until(
        lambda: (q := httpx.get(f"{url}/api/v1/system/quota", timeout=10).json())["quotas"]["d_id"]["total"] and q,
        30,
        what="the first D-ID poll",
    )
    assert set(quota["quotas"]) == {"gemini", "stability", "d_id", "youtube"}
    for entry in quota["quotas"].values():
        assert {"used", "total", "percentage", "reset_date", "status"} <= set(entry)
    assert quota["quotas"]["stability"]["reset_date"] is None

    job = 'job="monitor-under-test"'
    up = f'max by (check) (otel_monitor_health_check_up{{{job}, check=~"redis|celery"}})'
    want = {("redis",): 1.0, ("celery",): 0.0}
    wait_until(
        lambda: prom_values(stack.prometheus_url, up, ("check",)) == want,
        30,
        interval=1,
        what="health gauges in Prometheus",
    )
    # The quota gauges reach Prometheus on their own export and scrape: waited for like the health ones.
    wait_until(
        lambda: prom_values(stack.prometheus_url, f'quota_limit{{{job}, service="d-id"}}', ()) != {},
        30,
        interval=1,
        what="the D-ID quota gauge in Prometheus",
    )
    logs = "".join(p.read_text() for p in Path(workdir).rglob("*") if p.is_file() and p.suffix in (".log", ".out"))
    for secret in (DEMO_SECRETS["did_api_key"], DEMO_SECRETS["stability_api_key"]):
        assert secret not in logs and secret not in health.text

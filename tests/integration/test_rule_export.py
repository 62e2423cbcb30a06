"""`otel-monitor export-rules` and `test-rules` on the real promtool, amtool, Prometheus and Alertmanager."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import httpx
import pytest
import yaml

from otel_monitor.monitor.alerting.export.alertmanager import alertmanager_config
from otel_monitor.monitor.alerting.export.promtool import ALERTMANAGER_FILE, RULES_FILE, dump_yaml
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.monitor.cli import main
from tests.support.demo import create_project, demo_backend, wait_finished
from tests.support.paths import REPO_ROOT
from tests.support.receivers import AlertmanagerServer
from tests.support.stacks import private_stack, server_workdir
from tools.devstack import wait_until

SHIPPED = REPO_ROOT / "config" / "alert-rules.yaml"
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None or AMTOOL is None, reason="promtool and amtool (Debian) needed")

# A user's own promtool test: the Redis health check unhealthy fires RedisDown with its exported labels.
USER_TEST = {
    "rule_files": ["whatever-the-user-had.yaml"],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [{"series": 'otel_monitor_health_check_status{check="redis"}', "values": "0 2 2"}],
            "alert_rule_test": [
                {"eval_time": "0m", "alertname": "RedisDown", "exp_alerts": []},
                {
                    "eval_time": "2m",
                    "alertname": "RedisDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "check": "redis",
                                "severity": "critical",
                                "priority": "P0",
                                "error_code": "REDIS_CONNECTION_FAILED",
                            }
                        }
                    ],
                },
            ],
        }
    ],
}


@pytest.fixture
def exported(tmp_path):
    """The shipped rules exported by the command, as a user runs it."""
    assert main(["export-rules", "--rules", str(SHIPPED), "--out", str(tmp_path)]) == 0
    return tmp_path


def test_export_passes_promtool_and_amtool(exported):
    """promtool checks the exported rule groups (every shipped rule in them) and amtool loads the Alertmanager
    config."""
    rules = subprocess.run([PROMTOOL, "check", "rules", exported / RULES_FILE], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(load_rules(SHIPPED, promtool=None))} rules found" in rules.stdout
    config = subprocess.run([AMTOOL, "check-config", exported / ALERTMANAGER_FILE], capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr


def _annotations(exported, name: str) -> dict:
    groups = yaml.safe_load((exported / RULES_FILE).read_text())["groups"]
    return next(rule["annotations"] for group in groups for rule in group["rules"] if rule["alert"] == name)


@pytest.mark.parametrize(
    ("expected_value", "exit_status"),
    [("2", 0), ("1", 1)],  # the right annotations pass; a wrong expectation fails with promtool's status
)
def test_test_rules_runs_a_users_test_file(tmp_path, exported, capsys, expected_value, exit_status):
    """`test-rules` runs the user's file against the exported rules (its rule_files replaced) and exits with
    promtool's status, printing promtool's output."""
    test = yaml.safe_load(yaml.safe_dump(USER_TEST))
    expected = test["tests"][0]["alert_rule_test"][1]["exp_alerts"][0]
    expected["exp_annotations"] = _annotations(exported, "RedisDown")
    test["tests"][0]["input_series"][0]["values"] = f"0 {expected_value} {expected_value}"
    path = tmp_path / "my-tests.yaml"
    path.write_text(dump_yaml(test))
    assert main(["test-rules", "--rules", str(SHIPPED), str(path)]) == exit_status
    out = capsys.readouterr()
    assert ("SUCCESS" in out.out) is (exit_status == 0), out


def test_test_rules_without_promtool(tmp_path, monkeypatch, capsys):
    """Without promtool on the PATH, `test-rules` says so and exits 2."""
    path = tmp_path / "my-tests.yaml"
    path.write_text(dump_yaml(USER_TEST))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["test-rules", "--rules", str(SHIPPED), str(path)]) == 2
    assert "promtool not found" in capsys.readouterr().err


class _ExportedAlertmanager(AlertmanagerServer):
    """A real Alertmanager loaded with the exported config."""

    def __init__(self, workdir, config: str) -> None:
        super().__init__(workdir)
        self._exported = config

    def _config(self) -> str:
        return self._exported


def test_alertmanager_inhibits_the_streak_alert_while_redis_is_down(tmp_path):
    """The real Alertmanager with the exported config: the streak alert posted while RedisDown fires is inhibited
    by it; posted alone it is active."""
    config = dump_yaml(alertmanager_config(load_rules(SHIPPED, promtool=None)))
    server = _ExportedAlertmanager(tmp_path, config).start()
    try:
        ends = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat()
        streak = {"alertname": "ApiConsecutiveFailures", "priority": "P1", "service": "gemini"}
        httpx.post(f"{server.url}/api/v2/alerts", json=[{"labels": streak, "endsAt": ends}], timeout=5)
        alone = wait_until(lambda: server.alerts(), 10, what="the streak alert")
        assert alone[0]["status"]["state"] == "active"
        redis = {"alertname": "RedisDown", "priority": "P0", "check": "redis"}
        httpx.post(f"{server.url}/api/v2/alerts", json=[{"labels": redis, "endsAt": ends}], timeout=5)

        def inhibited():
            states = {a["labels"]["alertname"]: a["status"] for a in server.alerts()}
            held = states.get("ApiConsecutiveFailures", {})
            return states if held.get("state") == "suppressed" and held.get("inhibitedBy") else None

        states = wait_until(inhibited, 15, interval=0.2, what="the streak alert inhibited")
        assert states["RedisDown"]["state"] == "active"
    finally:
        server.stop()


def test_prometheus_fires_the_gemini_key_alert_on_demo_traffic(fakes, tmp_path):
    """The real Prometheus loads the exported rules (listed by /api/v1/rules) and, after the demo backend's Gemini
    call is refused for its key, its ALERTS series shows GeminiInvalidApiKey firing."""
    with private_stack("otel-monitor-rule-export-") as stack:
        assert main(["export-rules", "--rules", str(SHIPPED), "--out", str(tmp_path)]) == 0
        config_path = stack.workdir / "prometheus" / "prometheus.yml"
        config = yaml.safe_load(config_path.read_text())
        config["rule_files"] = [str(tmp_path / RULES_FILE)]
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        assert httpx.post(f"{stack.prometheus_url}/-/reload", timeout=10).status_code == 200
        groups = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        assert loaded == {rule.name for rule in load_rules(SHIPPED, promtool=None)}

        workdir = server_workdir("otel-monitor-rule-export-demo-")
        backend = demo_backend(stack, fakes, workdir, "rule-export").start()
        try:
            fakes.set_fault("gemini", mode="invalid_key")
            accepted = create_project(backend, ["gemini"])
            wait_finished(backend, {accepted["project_id"]})

            def firing():
                query = 'ALERTS{alertname="GeminiInvalidApiKey", alertstate="firing"}'
                response = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
                return response.json()["data"]["result"] or None

            series = wait_until(firing, 60, interval=1, what="GeminiInvalidApiKey firing in Prometheus")
            assert series[0]["metric"]["severity"] == "critical"
            assert series[0]["metric"]["service"] == "gemini"
        finally:
            backend.stop()
            fakes.set_fault("gemini", mode="ok", latencies=[0])
            shutil.rmtree(workdir, ignore_errors=True)


QUOTA_RULES = """\
rules:
  - name: DidQuotaLow
    priority: P1
    source: check
    expr: quota.d-id
    error_code: D_ID_QUOTA_LOW
    summary: D-ID credits are running out
    action_required: Buy credits
    runbook: https://runbooks.example.org/d-id-quota
"""


@pytest.mark.parametrize(
    ("critical", "ratio", "fires"),
    [(0.85, 0.85, True), (0.85, 0.84, False), (0.9, 0.89, False), (0.9, 0.9, True)],
)
def test_quota_check_exports_the_configured_critical_share(tmp_path, capsys, critical, ratio, fires):
    """A quota check rule exported with --config reads the config's quota.thresholds.critical (the share at which
    the quota check itself is critical): it fires at that usage ratio and is quiet just below, in promtool."""
    (tmp_path / "rules.yaml").write_text(QUOTA_RULES)
    (tmp_path / "monitor.yaml").write_text(
        f"quota:\n  thresholds: {{warning: 0.7, critical: {critical}}}\nalerting:\n  rules_file: rules.yaml\n"
    )
    alert = {
        "exp_labels": {"service": "d-id", "severity": "warning", "priority": "P1", "error_code": "D_ID_QUOTA_LOW"},
        "exp_annotations": {
            "summary": "D-ID credits are running out",
            "description": "Buy credits",
            "runbook": "https://runbooks.example.org/d-id-quota",
            "runbook_url": "https://runbooks.example.org/d-id-quota",
        },
    }
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": 'quota_usage_ratio{service="d-id"}', "values": f"0.5 {ratio} {ratio}"}],
                "alert_rule_test": [
                    {"eval_time": "0m", "alertname": "DidQuotaLow", "exp_alerts": []},
                    {"eval_time": "2m", "alertname": "DidQuotaLow", "exp_alerts": [alert] if fires else []},
                ],
            }
        ],
    }
    (tmp_path / "quota-test.yaml").write_text(dump_yaml(test))
    status = main(["test-rules", "--config", str(tmp_path / "monitor.yaml"), str(tmp_path / "quota-test.yaml")])
    assert status == 0, capsys.readouterr()


def test_export_without_a_rules_file_names_the_config_key(tmp_path, capsys):
    """A config naming no rules file, and no --rules: exit 2 naming the file, the alerting section's line and
    alerting.rules_file."""
    config = tmp_path / "monitor.yaml"
    config.write_text("alerting:\n  enabled: false\n")
    assert main(["export-rules", "--config", str(config), "--out", str(tmp_path)]) == 2
    assert f"{config}:1: alerting.rules_file: no rules file named" in capsys.readouterr().err

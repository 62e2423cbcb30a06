"""The rules in the Prometheus ecosystem's formats: rule groups, an Alertmanager config, promtool unit tests."""

from otel_monitor.monitor.alerting.export.alertmanager import alertmanager_config
from otel_monitor.monitor.alerting.export.prometheus import ExportSettings, check_rule_expr, prometheus_rule_groups
from otel_monitor.monitor.alerting.export.promtool import PromtoolMissing, export_files, run_rule_tests

__all__ = [
    "ExportSettings",
    "check_rule_expr",
    "prometheus_rule_groups",
    "alertmanager_config",
    "export_files",
    "run_rule_tests",
    "PromtoolMissing",
]

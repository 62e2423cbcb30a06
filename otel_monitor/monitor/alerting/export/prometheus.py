"""The rules as Prometheus rule groups: PromQL rules one to one, check rules on the series the monitor exports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from otel_monitor.instrument.metrics import PromNames
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.monitor.alerting.evaluate.evaluator import DEFAULT_INTERVALS, default_interval
from otel_monitor.monitor.alerting.evaluate.sources import CHECK_EXPR, CheckThresholds
from otel_monitor.monitor.alerting.model import Priority, Rule
from otel_monitor.monitor.health.metrics import HealthPromNames
from otel_monitor.monitor.health.status import STATUSES, UNHEALTHY
from otel_monitor.monitor.quota.config import QuotaThresholds
from otel_monitor.monitor.quota.metrics import QuotaPromNames
from otel_monitor.monitor.quota.status import CRITICAL, EXCEEDED, WARNING

__all__ = [
    "ExportSettings",
    "DEFAULT_SETTINGS",
    "check_rule_expr",
    "prometheus_rule_groups",
    "prometheus_duration",
    "group_name",
]

# Where an alert's runbook_url points when its runbook is text: the monitor's firing alerts of that priority,
# each carrying its runbook, summary, action and failing trace (a page every monitor serves, so no link breaks).
RUNBOOK_LINK = "{base}/api/v1/alerts?state=firing&priority={priority}"


@dataclass(frozen=True)
class ExportSettings:
    """What the export reads besides the rules: the thresholds the monitor's checks use (its config's
    ``quota.thresholds``, the CheckSource defaults) and the monitor's public address (for runbook links)."""

    quota_thresholds: QuotaThresholds = field(default_factory=QuotaThresholds)
    check_thresholds: CheckThresholds = field(default_factory=CheckThresholds)
    public_base_url: str = "http://127.0.0.1:8080"
    providers: tuple[str, ...] = SERVICE_KEYS


DEFAULT_SETTINGS = ExportSettings()


def prometheus_duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as ``300s``, fractions in milliseconds."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def _service_selector(target: str, providers: tuple[str, ...]) -> str:
    if target == "*":
        return "service=~" + json.dumps("|".join(providers))
    return "service=" + json.dumps(target)


def _quota_ratio_floor(settings: ExportSettings) -> float:
    """The lowest usage ratio whose quota status the check rules count (critical: the configured critical share)."""
    floors = {WARNING: settings.quota_thresholds.warning, CRITICAL: settings.quota_thresholds.critical, EXCEEDED: 1.0}
    return min(floors[status] for status in settings.check_thresholds.quota_statuses)


def check_rule_expr(rule: Rule, settings: ExportSettings = DEFAULT_SETTINGS) -> str:
    """The PromQL of a ``check`` rule over the series the monitor exports, with the check's own thresholds:
    ``health.X`` -> its status gauge at unhealthy; ``quota.X`` -> its usage ratio at the lowest counted status;
    ``streak.X > N`` -> the shared failure streak above N (the CheckSource default without ``> N``)."""
    match = CHECK_EXPR.match(rule.expr.strip())
    if match is None:
        raise ValueError(f"rule {rule.name}: unknown check {rule.expr!r}")
    kind, target = match["kind"], match["target"]
    if kind == "health":
        unhealthy = STATUSES.index(UNHEALTHY)
        return f"max by (check) ({HealthPromNames.STATUS}{{check={json.dumps(target)}}}) >= {unhealthy}"
    selector = _service_selector(target, settings.providers)
    if kind == "quota":
        return f"max by (service) ({QuotaPromNames.USAGE}{{{selector}}}) >= {_quota_ratio_floor(settings):g}"
    above = int(match["above"]) if match["above"] is not None else settings.check_thresholds.streak_above
    return f"max by (service) ({PromNames.CONSECUTIVE_FAILURES}{{{selector}}}) > {above}"


def _runbook_url(rule: Rule, settings: ExportSettings) -> str:
    if rule.runbook.startswith(("https://", "http://")):
        return rule.runbook
    return RUNBOOK_LINK.format(base=settings.public_base_url.rstrip("/"), priority=rule.priority.value)


def prometheus_rule(rule: Rule, settings: ExportSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """One alerting rule of Prometheus: ``for``, ``keep_firing_for``, the labels every notification carries
    (``severity`` critical/warning/info for P0/P1/P2) and ``summary``, ``description``, ``runbook_url``."""
    expr = rule.expr if rule.source == "promql" else check_rule_expr(rule, settings)
    return {
        "alert": rule.name,
        "expr": expr,
        "for": prometheus_duration(rule.for_seconds),
        "keep_firing_for": prometheus_duration(rule.clear_for_seconds),
        "labels": {
            **rule.labels,
            "severity": rule.priority.severity,
            "priority": rule.priority.value,
            "error_code": rule.error_code,
        },
        "annotations": {
            "summary": rule.summary,
            "description": rule.action_required,
            "runbook": rule.runbook,
            "runbook_url": _runbook_url(rule, settings),
        },
    }


def group_name(priority: Priority, interval: float) -> str:
    """``otel-monitor-P0`` for a priority's own cadence, ``otel-monitor-P1-every-5s`` for rules evaluated at
    another (a rule's ``interval_seconds``, streak checks at the P0 cadence)."""
    suffix = "" if interval == DEFAULT_INTERVALS[priority] else f"-every-{prometheus_duration(interval)}"
    return f"otel-monitor-{priority.value}{suffix}"


def prometheus_rule_groups(rules: list[Rule], settings: ExportSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """The rule file: one group per priority and evaluation interval (the interval the monitor evaluates the
    rule at), in priority order, the rules in file order."""
    groups: dict[tuple[int, float], list[Rule]] = {}
    order = list(Priority)
    for rule in rules:
        groups.setdefault((order.index(rule.priority), default_interval(rule)), []).append(rule)
    return {
        "groups": [
            {
                "name": group_name(order[priority], interval),
                "interval": prometheus_duration(interval),
                "rules": [prometheus_rule(rule, settings) for rule in members],
            }
            for (priority, interval), members in sorted(groups.items())
        ]
    }

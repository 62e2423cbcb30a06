"""Loads the alert rules file strictly: schema, names, inhibitions, check names and PromQL (promtool, else a parser)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.monitor.alerting.evaluate.sources import CHECK_EXPR
from otel_monitor.monitor.alerting.model import Rule
from otel_monitor.monitor.alerting.thresholds import THRESHOLD_REFERENCE, load_thresholds
from otel_monitor.monitor.config_file import ConfigError, ConfigProblem, load_config_file

__all__ = [
    "RulesFile",
    "HEALTH_CHECKS",
    "load_rules",
    "known_checks",
    "is_known_check",
    "check_promql",
    "promql_checker",
    "PROMQL_PARSER",
]

HEALTH_CHECKS = ("database", "redis", "celery", "disk", "ffmpeg")
# The PyPI package (Python binding of GreptimeDB's Rust PromQL parser) that checks PromQL where promtool is absent.
PROMQL_PARSER = "promql-parser"
_PROMTOOL_TIMEOUT_SECONDS = 60
# Where in the expression promtool found the error: `parse error` preceded by LINE:COLUMN of the expression.
_PROMQL_POSITION = re.compile(r"expression: (?P<line>\d+):(?P<column>\d+): ")
# promtool's line per failing rule: `FILE: 5:11: group "...", rule 1, "expr_3": could not parse expression: ...`
_PROMTOOL_FAILURE = re.compile(r'"expr_(?P<index>\d+)": (?P<message>.*)$')
# The rule texts that may refer to the thresholds file.
_THRESHOLD_FIELDS = ("expr", "summary", "action_required", "runbook")


class RulesFile(BaseModel):
    """The rules file: a list of rules under ``rules``."""

    model_config = ConfigDict(extra="forbid")

    # The thresholds file the rules' ``${thresholds.…}`` references read (relative to the rules file).
    thresholds: str | None = None
    rules: list[Rule]


def is_known_check(expr: str, service_keys: tuple[str, ...] = SERVICE_KEYS) -> bool:
    """Whether a ``check`` rule's expression names a check the service has (``streak.gemini > 5`` included)."""
    match = CHECK_EXPR.match(expr.strip())  # the grammar the evaluator's CheckSource reads
    if match is None or (match["above"] is not None and match["kind"] != "streak"):
        return False
    name = f"{match['kind']}.{match['target']}"
    return name in known_checks(service_keys) or name in ("quota.*", "streak.*")


def known_checks(service_keys: tuple[str, ...] = SERVICE_KEYS) -> frozenset[str]:
    """Names a ``check`` rule may use: the health checks and, per provider, its quota and failure streak."""
    return frozenset(
        [f"health.{name}" for name in HEALTH_CHECKS]
        + [f"quota.{key}" for key in service_keys]
        + [f"streak.{key}" for key in service_keys]
    )


def load_rules(
    path: str | os.PathLike[str], *, promtool: str | None = "promtool", service_keys: tuple[str, ...] = SERVICE_KEYS
) -> list[Rule]:
    """The rules of ``path``; raises ConfigError listing every problem, each with file, line and key.

    ``promtool`` is the binary checking PromQL (``promtool check rules``, the reference); when it is not on the
    PATH the promql-parser package checks instead, and with neither PromQL is not checked (``promql_checker``
    says which applies). None skips that check only.
    """
    path = Path(path)
    document = load_config_file(path, RulesFile)
    lines = _RuleLines(path)
    rules, problems = _resolve_thresholds(document, lines)
    problems += _name_problems(rules, lines) + _check_problems(rules, lines, service_keys)
    if promtool is not None:
        exprs = {i: r.expr for i, r in enumerate(rules) if r.source == "promql"}
        for index, message in check_promql(exprs, promtool):
            if index is None:
                problems.append(ConfigProblem(path, None, "", message))
            else:
                problems.append(
                    ConfigProblem(path, lines.of_expr_position(index, message), f"rules.{index}.expr", message)
                )
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.key)))
    return rules


def promql_checker(promtool: str | None = "promtool") -> str | None:
    """What checks PromQL: the promtool binary's path when on the PATH, else PROMQL_PARSER when it is installed,
    else None (PromQL is not checked: say so)."""
    if promtool is not None and (binary := shutil.which(promtool)) is not None:
        return binary
    return PROMQL_PARSER if importlib.util.find_spec("promql_parser") is not None else None


def check_promql(exprs: dict[int, str], promtool: str = "promtool") -> list[tuple[int | None, str]]:
    """(index, message) of every expression promtool rejects; index None for a failure of promtool itself.
    Without promtool on the PATH, of every expression the promql-parser package rejects; with neither, none."""
    if not exprs:
        return []
    binary = shutil.which(promtool)
    if binary is None:
        return _parse_promql(exprs)
    # One alerting rule per expression, named by its index in the rules file, so each error maps back.
    document = {
        "groups": [
            {"name": "otel_monitor_rules", "rules": [{"alert": f"expr_{i}", "expr": expr} for i, expr in exprs.items()]}
        ]
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="otel-monitor-rules-") as scratch:
        json.dump(document, scratch)  # JSON is YAML, and quotes every expression safely
        scratch.flush()
        try:
            completed = subprocess.run(
                [binary, "check", "rules", scratch.name],
                capture_output=True,
                text=True,
                timeout=_PROMTOOL_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [(None, f"cannot check PromQL: promtool failed to run ({exc})")]
    if completed.returncode == 0:
        return []
    output = completed.stdout + completed.stderr
    failures: list[tuple[int | None, str]] = []
    for line in output.splitlines():
        match = _PROMTOOL_FAILURE.search(line)
        if match and int(match["index"]) in exprs:
            failures.append((int(match["index"]), f"invalid PromQL: {match['message']}"))
    return failures or [(None, f"cannot check PromQL: promtool said: {output.strip()}")]


def _parse_promql(exprs: dict[int, str]) -> list[tuple[int | None, str]]:
    """(index, message) of every expression the promql-parser package rejects; none when it is not installed."""
    try:
        import promql_parser
    except ImportError:
        return []
    failures: list[tuple[int | None, str]] = []
    for index, expr in exprs.items():
        try:
            promql_parser.parse(expr)
        except Exception as exc:  # ValueError with the parser's message; anything else is a rejection too
            failures.append((index, f"invalid PromQL: {exc}"))
    return failures


class _RuleLines:
    """Lines of each rule's keys in the file (validation has already parsed it, so this cannot fail)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = path.read_text()
        self._text_lines = text.splitlines()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        self._rules: list[yaml.Node] = []
        if isinstance(root, yaml.MappingNode):
            for key, value in root.value:
                if key.value == "rules" and isinstance(value, yaml.SequenceNode):
                    self._rules = value.value

    def of(self, index: int, key: str, item: int | None = None) -> int | None:
        """Line of ``rules.INDEX.KEY`` (``.ITEM`` of a list), else of the rule itself."""
        rule = self._rules[index]
        value = next((v for k, v in rule.value if k.value == key), None)
        if value is None:
            return rule.start_mark.line + 1
        if item is not None and isinstance(value, yaml.SequenceNode) and item < len(value.value):
            value = value.value[item]
        return value.start_mark.line + 1

    def of_expr_position(self, index: int, message: str) -> int | None:
        """The file line of the position promtool names in ``rules.INDEX.expr``, for multi-line expressions too."""
        rule = self._rules[index]
        node = next((v for k, v in rule.value if k.value == "expr"), None)
        position = _PROMQL_POSITION.search(message)
        if node is None or position is None:
            return self.of(index, "expr")
        expr_line, column = int(position["line"]), int(position["column"])
        first = node.start_mark.line  # 0-based
        if node.style == "|":  # literal block: expression lines are file lines
            return first + 1 + expr_line
        # Folded block, plain or quoted scalar: the file's lines are joined by single spaces.
        content = (
            self._text_lines[first + 1 : node.end_mark.line + 1]
            if node.style == ">"
            else (
                [self._text_lines[first][node.start_mark.column :]]
                + self._text_lines[first + 1 : node.end_mark.line + 1]
            )
        )
        offset = 0
        for number, text in enumerate(content):
            offset += len(text.strip()) + 1
            if column <= offset:
                return (first + 2 if node.style == ">" else first + 1) + number
        return self.of(index, "expr")


def _resolve_thresholds(document: RulesFile, lines: _RuleLines) -> tuple[list[Rule], list[ConfigProblem]]:
    """The rules with every ``${thresholds.…}`` of their texts replaced from the file ``thresholds`` names, and a
    problem for each reference that file does not define (or that has no file to read)."""
    referenced = any(
        THRESHOLD_REFERENCE.search(getattr(rule, field)) for rule in document.rules for field in _THRESHOLD_FIELDS
    )
    if not referenced:
        return document.rules, []
    if document.thresholds is None:
        message = "the rules refer to ${thresholds.…}: name the thresholds file in `thresholds`"
        return document.rules, [ConfigProblem(lines.path, 1, "thresholds", message)]
    thresholds = load_thresholds(lines.path.parent / document.thresholds)
    problems: list[ConfigProblem] = []
    resolved: list[Rule] = []
    for index, rule in enumerate(document.rules):
        update: dict[str, str] = {}
        for field in _THRESHOLD_FIELDS:

            def unknown(reference: str, index: int = index, field: str = field) -> None:
                message = f"unknown threshold {reference!r} (not in {thresholds.path})"
                problems.append(ConfigProblem(lines.path, lines.of(index, field), f"rules.{index}.{field}", message))

            update[field] = thresholds.substitute(getattr(rule, field), unknown)
        resolved.append(rule.model_copy(update=update))
    return resolved, problems


def _name_problems(rules: list[Rule], lines: _RuleLines) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    first_index: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.name in first_index:
            first = first_index[rule.name]
            message = f"duplicate rule name {rule.name!r} (first at line {lines.of(first, 'name')})"
            problems.append(ConfigProblem(lines.path, lines.of(index, "name"), f"rules.{index}.name", message))
        else:
            first_index[rule.name] = index
    for index, rule in enumerate(rules):
        for item, other in enumerate(rule.inhibited_by):
            if other not in first_index:
                message = f"unknown rule {other!r}"
            elif other == rule.name:
                message = "a rule cannot inhibit itself"
            else:
                continue
            problems.append(
                ConfigProblem(
                    lines.path, lines.of(index, "inhibited_by", item), f"rules.{index}.inhibited_by.{item}", message
                )
            )
    return problems


def _check_problems(rules: list[Rule], lines: _RuleLines, service_keys: tuple[str, ...]) -> list[ConfigProblem]:
    known = ", ".join(sorted(known_checks(service_keys))) + ", quota.*, streak.* (streaks: optional '> N')"
    return [
        ConfigProblem(
            lines.path, lines.of(index, "expr"), f"rules.{index}.expr", f"unknown check {rule.expr!r}; known: {known}"
        )
        for index, rule in enumerate(rules)
        if rule.source == "check" and not is_known_check(rule.expr, service_keys)
    ]

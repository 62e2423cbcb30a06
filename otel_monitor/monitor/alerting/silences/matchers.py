"""Alertmanager's matchers (``name=value``, ``!=``, ``=~``, ``!~``; regexes match the whole value) over an alert's
``rule``, ``priority``, ``error_code`` and labels (``service`` among them)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from otel_monitor.monitor.alerting.model import Alert

__all__ = ["Matcher", "MatchOperator", "MATCH_OPERATORS", "parse_matcher", "alert_fields", "matches_all"]

MatchOperator = Literal["=", "!=", "=~", "!~"]
MATCH_OPERATORS: tuple[str, ...] = ("=", "!=", "=~", "!~")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# The longest operator first: ``a!=b`` is ``a != b``, not ``a! = b``.
_MATCHER_TEXT = re.compile(rf"^\s*({_NAME})\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


class Matcher(BaseModel):
    """One condition on one field of an alert; a field the alert lacks reads as the empty string (Alertmanager)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=rf"^{_NAME}$", description="rule, priority, error_code, service or any alert label")
    value: str = Field(description="the value, or a regular expression matching the whole value (=~, !~)")
    operator: MatchOperator = "="

    @model_validator(mode="after")
    def _regex_compiles(self) -> Matcher:
        if self.operator in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value: not a regular expression ({exc})") from None
        return self

    def matches(self, fields: dict[str, str]) -> bool:
        found = fields.get(self.name, "")
        if self.operator == "=":
            return found == self.value
        if self.operator == "!=":
            return found != self.value
        full = re.fullmatch(self.value, found) is not None
        return full if self.operator == "=~" else not full

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """``service=gemini``, ``rule=~Gemini.*``: a ValueError saying what is wrong otherwise."""
    found = _MATCHER_TEXT.match(text)
    if found is None:
        raise ValueError(f"not a matcher {text!r}: NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX")
    name, operator, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return Matcher(name=name, value=value, operator=operator)


def alert_fields(alert: Alert) -> dict[str, str]:
    """What matchers read of an alert: its labels, with ``rule``, ``priority`` and ``error_code`` over them."""
    return {**alert.labels, "rule": alert.rule, "priority": alert.priority.value, "error_code": alert.error_code}


def matches_all(matchers: Iterable[Matcher], alert: Alert) -> bool:
    fields = alert_fields(alert)
    return all(matcher.matches(fields) for matcher in matchers)

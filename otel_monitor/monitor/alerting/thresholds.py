"""The thresholds file (target, warning, critical per provider and system) and ``${thresholds.…}`` references."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from otel_monitor.monitor.config_file import load_config_file

__all__ = ["Levels", "ThresholdsFile", "Thresholds", "THRESHOLD_REFERENCE", "load_thresholds"]

# ``${thresholds.SECTION.NAME.LEVEL}``, optionally ``:percent`` (a ratio written as a percentage, for summaries).
THRESHOLD_REFERENCE = re.compile(r"\$\{thresholds\.(?P<path>[A-Za-z0-9_.-]+?)(?::(?P<format>percent))?\}")


class Levels(BaseModel):
    """One quantity's levels: where it should be, where it warns and where it is critical."""

    model_config = ConfigDict(extra="forbid")

    target: float | None = None
    warning: float | None = None
    critical: float | None = None


class ThresholdsFile(BaseModel):
    """The thresholds file: per provider, for every provider, the system and the business."""

    model_config = ConfigDict(extra="forbid")

    providers: dict[str, dict[str, Levels]]
    all_providers: dict[str, Levels]
    system: dict[str, Levels]
    business: dict[str, Levels]


class Thresholds:
    """A loaded thresholds file: the model, and every number as written (``0.90`` stays ``0.90`` in a rule)."""

    def __init__(self, path: Path, model: ThresholdsFile, literals: dict[str, str]) -> None:
        self.path = path
        self.model = model
        self._literals = literals

    def literal(self, reference: str) -> str | None:
        """The number at ``SECTION.NAME.LEVEL`` (``providers.SERVICE.NAME.LEVEL``) as written, or None."""
        return self._literals.get(reference)

    def known(self) -> list[str]:
        """Every reference the file defines."""
        return sorted(self._literals)

    def substitute(self, text: str, unknown: Callable[[str], None]) -> str:
        """``text`` with each ``${thresholds.…}`` replaced; ``unknown`` is called with each reference not defined."""

        def replace(match: re.Match[str]) -> str:
            literal = self.literal(match["path"])
            if literal is None:
                unknown(match["path"])
                return match[0]
            if match["format"] == "percent":
                return f"{(Decimal(literal) * 100).normalize():f}"
            return literal

        return THRESHOLD_REFERENCE.sub(replace, text)


def load_thresholds(path: str | os.PathLike[str]) -> Thresholds:
    """The thresholds of ``path``; raises ConfigError naming file, line and key of each problem."""
    path = Path(path)
    model = load_config_file(path, ThresholdsFile)
    literals: dict[str, str] = {}

    def walk(node: yaml.Node | None, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, f"{prefix}.{key.value}" if prefix else key.value)
        elif isinstance(node, yaml.ScalarNode) and node.value not in ("", "null", "~"):
            literals[prefix] = node.value

    walk(yaml.compose(path.read_text(), Loader=yaml.SafeLoader), "")
    return Thresholds(path, model, literals)

"""Shipped alert rules as tests and benches use them: one rule's raw config, with its timings made fast."""

from __future__ import annotations

from typing import Any

import yaml

from tools.devstack.stack import REPO_ROOT

SHIPPED_RULES = REPO_ROOT / "config" / "alert-rules.yaml"


def shipped_rule(name: str, /, **changes: Any) -> dict[str, Any]:
    """The shipped rule ``name`` as it stands in config/alert-rules.yaml, with ``changes`` applied (a faster
    ``interval_seconds``, a shorter ``clear_for_seconds``, another ``name``)."""
    [rule] = [rule for rule in yaml.safe_load(SHIPPED_RULES.read_text())["rules"] if rule["name"] == name]
    return {**rule, **changes}

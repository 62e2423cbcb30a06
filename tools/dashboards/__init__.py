"""Writes the dashboards' threshold steps from config/thresholds.yaml (`make dashboards`)."""

from __future__ import annotations

import json
from pathlib import Path

from otel_monitor.monitor.alerting.thresholds import Thresholds, load_thresholds

__all__ = ["DASHBOARD_DIR", "THRESHOLDS_FILE", "PANEL_THRESHOLDS", "render", "write"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO_ROOT / "dashboards"
THRESHOLDS_FILE = REPO_ROOT / "config" / "thresholds.yaml"

_P = "providers."
# (dashboard file, panel title) -> (quantity in the thresholds file, the levels its colour steps start at, in the
# order the panel's steps rise: the base step has no value, each next step starts at one level).
PANEL_THRESHOLDS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("business.json", "Project success rate"): ("business.project_success_rate", ("warning", "target")),
    ("business.json", "Average generation time"): ("business.project_generation_seconds", ("target", "warning")),
    ("business.json", "Generation time"): ("business.project_generation_seconds", ("target", "warning")),
    ("external-apis.json", "Gemini success rate"): (_P + "gemini.success_rate", ("warning", "target")),
    ("external-apis.json", "Gemini error rate"): (_P + "gemini.error_rate", ("target", "warning")),
    ("external-apis.json", "Gemini P50 latency"): (_P + "gemini.latency_p50_seconds", ("target", "warning")),
    ("external-apis.json", "Gemini P90 latency"): (_P + "gemini.latency_p90_seconds", ("target", "warning")),
    ("external-apis.json", "Gemini P99 latency"): (_P + "gemini.latency_p99_seconds", ("target", "warning")),
    ("external-apis.json", "Gemini retries per request"): (_P + "gemini.retries_per_request", ("target", "warning")),
    ("external-apis.json", "Stability success rate"): (_P + "stability.success_rate", ("warning", "target")),
    ("external-apis.json", "Stability error rate"): (_P + "stability.error_rate", ("target", "warning")),
    ("external-apis.json", "Stability P50 latency"): (_P + "stability.latency_p50_seconds", ("target", "warning")),
    ("external-apis.json", "Stability P90 latency"): (_P + "stability.latency_p90_seconds", ("target", "warning")),
    ("external-apis.json", "Stability partial-failure rate"): (
        _P + "stability.partial_failure_rate",
        ("target", "warning"),
    ),
    ("external-apis.json", "D-ID success rate"): (_P + "d-id.success_rate", ("warning", "target")),
    ("external-apis.json", "D-ID P50 latency"): (_P + "d-id.latency_p50_seconds", ("target", "warning")),
    ("external-apis.json", "D-ID P90 latency"): (_P + "d-id.latency_p90_seconds", ("target", "warning")),
    ("external-apis.json", "D-ID timeout rate"): (_P + "d-id.timeout_rate", ("target", "warning")),
    ("external-apis.json", "YouTube upload success rate"): (_P + "youtube.upload_success_rate", ("warning", "target")),
    ("external-apis.json", "YouTube average upload time"): (_P + "youtube.upload_seconds", ("target", "warning")),
    ("external-apis.json", "YouTube average upload time (trend)"): (
        _P + "youtube.upload_seconds",
        ("target", "warning"),
    ),
    ("external-apis.json", "YouTube token refresh success rate"): (
        _P + "youtube.token_refresh_success_rate",
        ("warning", "target"),
    ),
    ("system.json", "Disk free per host"): ("system.disk_free", ("critical", "warning")),
    ("system.json", "CPU per host"): ("system.cpu_usage", ("warning", "critical")),
    ("system.json", "Memory per host"): ("system.memory_usage", ("warning", "critical")),
    ("system.json", "PostgreSQL connections"): ("system.database_connections", ("warning", "critical")),
    ("system.json", "Queue length"): ("system.celery_queue_length", ("warning", "critical")),
    ("system.json", "Quota used"): ("all_providers.quota_usage", ("warning", "critical")),
}


def _number(literal: str) -> int | float:
    """A threshold as JSON writes it: ``5`` stays an integer, ``0.90`` and ``1.0`` are floats."""
    return float(literal) if any(c in literal for c in ".eE") else int(literal)


def _panels(panels: list[dict]) -> list[dict]:
    flat = []
    for panel in panels:
        flat.append(panel)
        flat += _panels(panel.get("panels", []))  # the panels of collapsed rows
    return flat


def render(thresholds: Thresholds, dashboard_dir: Path = DASHBOARD_DIR) -> dict[str, str]:
    """{file name: its JSON text} of every dashboard, the threshold steps of PANEL_THRESHOLDS set from
    ``thresholds``; raises KeyError naming a panel or a threshold that is missing."""
    rendered: dict[str, str] = {}
    found: set[tuple[str, str]] = set()
    for path in sorted(dashboard_dir.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in _panels(board["panels"]):
            key = (path.name, panel["title"])
            if key not in PANEL_THRESHOLDS:
                continue
            quantity, levels = PANEL_THRESHOLDS[key]
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            if len(steps) != len(levels) + 1:
                raise KeyError(f"{path.name}: panel {panel['title']!r} has {len(steps)} steps, not {len(levels) + 1}")
            for step, level in zip(steps[1:], levels, strict=True):
                literal = thresholds.literal(f"{quantity}.{level}")
                if literal is None:
                    raise KeyError(f"{thresholds.path}: no {quantity}.{level} (panel {panel['title']!r})")
                step["value"] = _number(literal)
            found.add(key)
        rendered[path.name] = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
    missing = sorted(set(PANEL_THRESHOLDS) - found)
    if missing:
        raise KeyError(f"no such dashboard panel(s): {missing}")
    return rendered


def write(thresholds_file: Path = THRESHOLDS_FILE, dashboard_dir: Path = DASHBOARD_DIR) -> list[str]:
    """Writes the dashboards of ``dashboard_dir`` with the thresholds of ``thresholds_file``; the names changed."""
    changed = []
    for name, text in render(load_thresholds(thresholds_file), dashboard_dir).items():
        path = dashboard_dir / name
        if path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return changed

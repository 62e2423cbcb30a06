"""The Grafana dashboards of dashboards/, generated from code and config/thresholds.yaml (`make dashboards`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from otel_monitor.monitor.alerting.thresholds import Thresholds, load_thresholds
from tools.dashboards.business import business
from tools.dashboards.external_apis import external_apis
from tools.dashboards.pipeline import pipeline
from tools.dashboards.system import system

__all__ = ["DASHBOARDS", "DASHBOARD_DIR", "THRESHOLDS_FILE", "render", "write"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO_ROOT / "dashboards"
THRESHOLDS_FILE = REPO_ROOT / "config" / "thresholds.yaml"

# File name -> the function building its model from the thresholds.
DASHBOARDS: dict[str, Callable[[Thresholds], dict]] = {
    "business.json": business,
    "external-apis.json": external_apis,
    "pipeline.json": pipeline,
    "system.json": system,
}


def render(thresholds: Thresholds) -> dict[str, str]:
    """{file name: its JSON text} of every dashboard, threshold steps from ``thresholds``; KeyError names a
    threshold a panel needs and the file lacks."""
    return {
        name: json.dumps(build(thresholds), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()
    }


def write(thresholds_file: Path = THRESHOLDS_FILE, dashboard_dir: Path = DASHBOARD_DIR) -> list[str]:
    """Writes every dashboard into ``dashboard_dir`` with the thresholds of ``thresholds_file``; the names changed."""
    changed = []
    for name, text in render(load_thresholds(thresholds_file)).items():
        path = dashboard_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return changed

"""`pip install otel-monitor` is the library alone: the built wheel, installed without extras into a fresh venv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from tools.devstack import free_port
from tools.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.install

# The service's dependencies (the [monitor] and [celery] extras), by import name: none may come with the library.
SERVICE_MODULES = (
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "sentry_sdk",
    "celery",
    "yaml",
    "promql_parser",
)
SERVICE_DISTRIBUTIONS = (
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg-binary",
    "sentry-sdk",
    "celery",
    "pyyaml",
    "promql-parser",
)

# Run by the fresh venv's python: what is importable there, and one span and one log line through the library.
_PROBE = r"""
import importlib.metadata
import importlib.util
import json
import sys

modules, endpoint, log_dir = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
report = {"importable": [name for name in modules if importlib.util.find_spec(name) is not None],
          "distributions": sorted(dist.metadata["Name"].lower().replace("_", "-")
                                  for dist in importlib.metadata.distributions())}

import otel_monitor
from opentelemetry import trace
from otel_monitor import StructuredLogger, TelemetrySettings, setup_telemetry

# Nothing listens at the endpoint: exports fail, and neither set-up nor the host's calls may raise.
telemetry = setup_telemetry(TelemetrySettings(service_name="wheel-install", otlp_endpoint=endpoint, log_dir=log_dir,
                                              export_timeout_seconds=0.5))
with trace.get_tracer("wheel-install").start_as_current_span("installed wheel") as span:
    StructuredLogger("wheel_install").info("library works without extras")
    report["trace_id"] = format(span.get_span_context().trace_id, "032x")
telemetry.shutdown()
report["version"] = otel_monitor.__version__
report["package"] = otel_monitor.__file__
print(json.dumps(report))
"""


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    """Runs ``command`` without this process's PYTHONPATH (which may name the checkout): the venv's own packages."""
    environ = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=environ, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of what the build reads (as the Dockerfile copies it): no build files land in
    the checkout, and a second run at the same time builds its own."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy2(REPO_ROOT / "pyproject.toml", source)
    shutil.copy2(REPO_ROOT / "README.md", source)
    shutil.copytree(
        REPO_ROOT / "otel_monitor", source / "otel_monitor", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, source)
    (built,) = dist.glob("otel_monitor-*.whl")
    return built


def _pip_into(python: Path, *arguments: str | Path) -> str:
    """This interpreter's pip acting on the venv of ``python``: the venv needs no pip of its own."""
    return _run(sys.executable, "-m", "pip", "--python", python, *arguments)


@pytest.fixture(scope="module")
def library_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel without extras, its dependencies at constraints.txt's versions (pip's own
    download cache keeps repeated runs fast)."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    _pip_into(python, "install", "-q", "--no-compile", wheel, "-c", REPO_ROOT / "constraints.txt")
    return python


def test_the_wheel_holds_the_package_only(wheel):
    """The dev stack, the tests, the demo and the benches stay in the repository."""
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"otel_monitor"}


def test_the_wheel_ships_the_page_templates(wheel):
    """The pages' templates are package data: the installed monitor renders its pages from the wheel."""
    shipped = set(zipfile.ZipFile(wheel).namelist())
    templates = REPO_ROOT / "otel_monitor" / "monitor" / "status" / "templates"
    expected = {f"otel_monitor/monitor/status/templates/{path.name}" for path in templates.glob("*.html")}
    assert "otel_monitor/monitor/status/templates/alert.html" in expected and expected <= shipped


def test_installed_without_extras_it_brings_no_service_dependency_and_sets_up_telemetry(library_venv, tmp_path):
    """None of the service's dependencies is installed; setup_telemetry works, pointed at a collector that is not
    there, and a log line written in a span carries its trace id; the version is the project's."""
    _pip_into(library_venv, "check")
    log_dir = tmp_path / "logs"
    closed_port = free_port()
    output = _run(
        library_venv,
        "-c",
        _PROBE,
        json.dumps(SERVICE_MODULES),
        f"http://127.0.0.1:{closed_port}",
        log_dir,
        cwd=tmp_path,
    )
    report = json.loads(output.strip().splitlines()[-1])

    assert report["importable"] == []
    assert not set(report["distributions"]) & set(SERVICE_DISTRIBUTIONS)
    assert "otel-monitor" in report["distributions"]
    assert Path(report["package"]).is_relative_to(library_venv.parent.parent)  # the wheel's, not the checkout's
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert report["version"] == project["version"]

    lines = [json.loads(line) for line in (log_dir / "app.log").read_text().splitlines()]
    (line,) = [line for line in lines if line.get("message") == "library works without extras"]
    assert line["trace_id"] == report["trace_id"]


def test_the_command_without_the_monitor_extra_says_which_extra_to_install(library_venv):
    """`otel-monitor` in a library-only install exits 2 naming the [monitor] extra, not with a traceback."""
    command = library_venv.parent / "otel-monitor"
    done = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "pip install 'otel-monitor[monitor]'" in done.stderr and "Traceback" not in done.stderr

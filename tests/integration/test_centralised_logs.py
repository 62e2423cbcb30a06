"""Centralised logs: the demo's OTLP log records reach VictoriaLogs through the collector, found by trace_id."""

from __future__ import annotations

import pytest

from otel_monitor.logs.files import read_log_records
from tests.support.backends import victorialogs_lines
from tests.support.demo import create_project, demo_backend, wait_finished
from tools.devstack import wait_until

pytestmark = pytest.mark.stack

# The levels the backend exports as OTLP log records (its app.log also holds DEBUG lines).
EXPORTED_LEVELS = {"info", "warning", "error", "critical"}


def test_failing_call_log_lines_are_found_by_trace_id(stack, fakes, workdir):
    """A project whose Gemini call fails (invalid key): the query API returns, for its trace_id, exactly the lines
    the API and the worker logged in that trace, the failing call's error line among them."""
    backend = demo_backend(stack, fakes, workdir, "central-logs")
    fakes.set_fault("gemini", mode="invalid_key")
    backend.start()
    try:
        accepted = create_project(backend, ["gemini"])
        wait_finished(backend, {accepted["project_id"]})
        trace_id = accepted["trace_id"]
        logged = [
            line
            for line in read_log_records(backend.log_dir)
            if line.get("trace_id") == trace_id and line["level"] in EXPORTED_LEVELS
        ]
        failing = [line for line in logged if line.get("error_code") == "GEMINI_INVALID_API_KEY"]
        assert failing, "the failing call logged no error line"

        def all_stored() -> list[dict] | None:
            found = victorialogs_lines(stack.victorialogs_url, trace_id)
            return found if len(found) >= len(logged) else None

        stored = wait_until(all_stored, 30, interval=0.5, what="the trace's log lines in VictoriaLogs")
    finally:
        backend.stop()
    assert {line["trace_id"] for line in stored} == {trace_id}
    assert sorted(line["_msg"] for line in stored) == sorted(line["message"] for line in logged)
    assert {line["service.name"] for line in stored} == {backend.api_service, backend.worker_service}
    errors = [line for line in stored if line.get("error_code") == "GEMINI_INVALID_API_KEY"]
    assert [line["_msg"] for line in errors] == [line["message"] for line in failing]
    # Failed calls are logged at WARNING, which OpenTelemetry's log data model names WARN.
    assert {line["level"] for line in failing} == {"warning"} and {line["severity_text"] for line in errors} == {"WARN"}

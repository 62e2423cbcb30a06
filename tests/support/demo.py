"""Driving the demo backend from tests: start it against a stack and the fakes, create projects, wait for them, and
the tokens the fake Gemini answers for a project's script."""

from __future__ import annotations

from pathlib import Path

import httpx

from examples.demo_backend.launcher import DEMO_SECRETS, DemoBackend
from examples.demo_backend.providers import SCRIPT_MODEL, script_request
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.logs.files import read_log_records
from tools.devstack import DevStack, wait_until
from tools.devstack.demo import demo_backend_on

__all__ = ["demo_backend", "create_project", "wait_finished", "gemini_tokens"]


def demo_backend(stack: DevStack, fakes, workdir: Path, service_prefix: str, **options) -> DemoBackend:
    """A (not yet started) demo API and 2-process worker on ``stack``, every fake provider reset to answer ok."""
    for service in SERVICE_KEYS:
        fakes.set_fault(service, mode="ok", latencies=[0])
    options.setdefault("metric_export_interval", 1.0)
    return demo_backend_on(stack, fakes, workdir, service_prefix=service_prefix, **options)


def create_project(demo: DemoBackend, steps, topic: str = "otters", user_id: str | None = None) -> dict:
    """POSTs a project (of ``user_id``, the demo's "anonymous" when None); returns the API's answer
    (``project_id``, ``trace_id``)."""
    body = {"topic": topic, "steps": steps, **({"user_id": user_id} if user_id is not None else {})}
    response = httpx.post(f"{demo.api_url}/api/v1/projects", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def wait_finished(demo: DemoBackend, project_ids: set[str], timeout: float = 90) -> dict[str, dict]:
    """The worker's "Video project finished" log line of each project, read from its logs/app.log."""

    def finished():
        lines = {
            line.get("project_id"): line
            for line in read_log_records(demo.log_dir)
            if line["message"] == "Video project finished"
        }
        return lines if project_ids <= set(lines) else None

    return wait_until(finished, timeout, interval=0.5, what=f"{len(project_ids)} projects to finish")


def gemini_tokens(fakes, topic: str) -> tuple[int, int]:
    """(input, output) tokens the fake Gemini answers for the script of ``topic`` (it counts deterministically)."""
    usage = httpx.post(
        f"{fakes.base_url('gemini')}/v1beta/models/{SCRIPT_MODEL}:generateContent",
        headers={"x-goog-api-key": DEMO_SECRETS["gemini_api_key"]},
        json=script_request(topic),
        timeout=10,
    ).json()["usageMetadata"]
    return usage["promptTokenCount"], usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]

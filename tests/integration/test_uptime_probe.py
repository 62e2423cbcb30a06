"""Uptime from outside: the blackbox exporter probes the demo API's URLs through Prometheus; stopping the API raises
the shipped ApiUnreachableFromOutside P0 at a webhook through the monitor, starting it again resolves it."""

from __future__ import annotations

import shutil

import httpx
import pytest
import yaml

from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.monitor.status.collect import outside_component
from tests.support.backends import prom_values
from tests.support.demo import demo_backend
from tests.support.monitor import alerting_monitor
from tests.support.stacks import private_stack, server_workdir
from tools.devstack import wait_until
from tools.devstack.stack import BLACKBOX_JOB, REPO_ROOT

pytestmark = pytest.mark.stack

RULE = "ApiUnreachableFromOutside"
CODE = SystemErrorCode.API_UNREACHABLE.value
# Bounds, not timings: the rule's for_seconds (15 s) or clear_for_seconds (30 s), plus scrapes and P0 evaluations;
# the status page reads the probes with the providers' metrics, every 30 s.
FIRE_WITHIN_SECONDS = 90
RESOLVE_WITHIN_SECONDS = 120
STATUS_PAGE_WITHIN_SECONDS = 75


def shipped_rule(name: str) -> dict:
    """The shipped rules file holding only ``name``, unchanged (its for, clear and the P0 cadence are the defaults)."""
    rules = yaml.safe_load((REPO_ROOT / "config" / "alert-rules.yaml").read_text())
    return {"rules": [rule for rule in rules["rules"] if rule["name"] == name]}


def probes(prometheus_url: str) -> dict[tuple, float]:
    return prom_values(prometheus_url, f'probe_success{{job="{BLACKBOX_JOB}"}}', ("service", "instance"))


def status_page_state(monitor_url: str, component: str) -> str | None:
    components = httpx.get(f"{monitor_url}/api/v1/status", timeout=10).json()["components"]
    return {c["name"]: c["state"] for c in components}.get(component)


def hook_notifications(receiver, status: str) -> list[dict]:
    return [
        request["json"]
        for request in receiver.requests
        if request["json"]["status"] == status and request["json"]["alert"]["error_code"] == CODE
    ]


def test_stopping_the_api_raises_the_outside_p0_and_starting_it_resolves_it(fakes, receiver):
    """With the API's public and health URLs probed from outside: all up, no alert; the API stopped, both probes fail,
    one P0 API_UNREACHABLE for the service reaches the webhook and the status page shows the service down from
    outside; the API started again, the probes pass and one resolved notification follows."""
    workdir = server_workdir("otel-monitor-uptime-")
    with private_stack("otel-monitor-uptime-stack-") as stack:
        backend = demo_backend(stack, fakes, workdir / "demo", "uptime").start()
        monitor = alerting_monitor(
            stack,
            workdir / "monitor",
            shipped_rule(RULE),
            {"hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
            service_name="monitor-uptime-under-test",
        ).start()
        try:
            urls = backend.outside_probe_urls
            stack.probe_from_outside({backend.api_service: urls})
            every_probe = {(backend.api_service, url) for url in urls}
            wait_until(
                lambda: probes(stack.prometheus_url) == dict.fromkeys(every_probe, 1.0), 60, what="probes passing"
            )

            backend.processes["api"].stop()
            wait_until(lambda: hook_notifications(receiver, "firing"), FIRE_WITHIN_SECONDS, interval=0.5, what="the P0")
            assert probes(stack.prometheus_url) == dict.fromkeys(every_probe, 0.0)
            (firing,) = hook_notifications(receiver, "firing")
            assert firing["alert"]["priority"] == "P0"
            assert firing["alert"]["rule"] == RULE
            assert firing["alert"]["labels"]["service"] == backend.api_service
            outside = outside_component(backend.api_service)
            wait_until(
                lambda: status_page_state(monitor.url, outside) == "down",
                STATUS_PAGE_WITHIN_SECONDS,
                interval=1,
                what="the status page's outside component down",
            )

            backend.processes["api"].start()
            wait_until(
                lambda: hook_notifications(receiver, "resolved"),
                RESOLVE_WITHIN_SECONDS,
                interval=0.5,
                what="the P0 to resolve",
            )
            assert probes(stack.prometheus_url) == dict.fromkeys(every_probe, 1.0)
            (resolved,) = hook_notifications(receiver, "resolved")
            assert resolved["alert"]["fingerprint"] == firing["alert"]["fingerprint"]
            assert len(hook_notifications(receiver, "firing")) == 1
        finally:
            monitor.stop()
            backend.stop()
            shutil.rmtree(workdir, ignore_errors=True)

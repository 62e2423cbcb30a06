"""A served monitor (``otel-monitor serve`` as a process) alerting on given rules to given P0 channels, for tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from examples.monitor_launcher import MonitorProcess
from tools.devstack import DevStack

__all__ = ["alerting_monitor"]

# Retries fast enough for a test to see a receiver that comes back.
FAST_RETRY = {"initial_backoff_seconds": 0.2, "max_backoff_seconds": 1}


def alerting_monitor(
    stack: DevStack,
    workdir: Path,
    rules: dict,
    channels: dict,
    *,
    service_name: str,
    health: dict | None = None,
    **alerting: object,
) -> MonitorProcess:
    """The monitor in ``workdir`` on ``stack``, its health checks refreshed every second, ``rules`` evaluated and
    every P0 routed to all of ``channels``; ``alerting`` adds keys of the config's alerting section."""
    process = MonitorProcess(
        stack,
        workdir,
        service_name=service_name,
        health={"cache_ttl_seconds": 1, "check_timeout_seconds": 1, **(health or {})},
    )
    rules_file = process.workdir / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    process.config["alerting"] = {
        "enabled": True,
        "rules_file": str(rules_file),
        "prometheus_url": stack.prometheus_url,
        "jaeger_url": stack.jaeger_url,
        **alerting,
        # P1 and P2 go nowhere on purpose (`[]`): serve refuses rules of a priority left unrouted.
        "delivery": {"channels": channels, "routing": {"P0": list(channels), "P1": [], "P2": []}, "retry": FAST_RETRY},
    }
    return process

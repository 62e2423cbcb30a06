"""A served monitor (``otel-monitor serve`` as a process) alerting on given rules to given P0 channels, for tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from examples.monitor_launcher import MonitorProcess
from tests.support.health import LATENCY_NOT_JUDGED
from tools.devstack import DevStack
from tools.devstack.rules import shipped_rule

__all__ = ["API_TOKENS", "alerting_monitor", "secured_monitor"]

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
        health={"cache_ttl_seconds": 1, "check_timeout_seconds": 1, **LATENCY_NOT_JUDGED, **(health or {})},
    )
    rules_file = process.workdir / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    process.config["alerting"] = {
        "enabled": True,
        "rules_file": str(rules_file),
        "prometheus_url": stack.prometheus_url,
        "jaeger_url": stack.jaeger_url,
        "logs_url": stack.victorialogs_url,
        **alerting,
        # P1 and P2 go nowhere on purpose (`[]`): serve refuses rules of a priority left unrouted.
        "delivery": {"channels": channels, "routing": {"P0": list(channels), "P1": [], "P2": []}, "retry": FAST_RETRY},
    }
    return process


# One token per scope (test values: random-looking, never real); the writer's comes from the environment.
API_TOKENS = {"read": "reader-" + "4f1c" * 8, "write": "writer-" + "9b2e" * 8, "admin": "admin-" + "d07a" * 8}
WRITER_TOKEN_VARIABLE = "OTEL_MONITOR_TEST_WRITER_TOKEN"
_ONE_RULE = {"rules": [shipped_rule("RedisDown", interval_seconds=1)]}


def secured_monitor(stack: DevStack, workdir: Path, hook_url: str, *, service_name: str) -> MonitorProcess:
    """A monitor with alerting on (one rule, P0 to a webhook at ``hook_url``) and a token per scope of
    ``API_TOKENS``: read and admin stored as hashes, write read from the environment."""
    from otel_monitor.monitor.auth.config import hash_token

    process = alerting_monitor(
        stack,
        workdir,
        _ONE_RULE,
        {"hook": {"type": "webhook", "url": hook_url, "timeout_seconds": 2}},
        service_name=service_name,
    )
    process.config["auth"] = {
        "tokens": [
            {"name": "reader", "scopes": ["read"], "sha256": hash_token(API_TOKENS["read"])},
            {"name": "writer", "scopes": ["write"], "from_env": WRITER_TOKEN_VARIABLE},
            {"name": "admin", "scopes": ["admin"], "sha256": hash_token(API_TOKENS["admin"])},
        ]
    }
    process.env = {**process.env, WRITER_TOKEN_VARIABLE: API_TOKENS["write"]}
    return process

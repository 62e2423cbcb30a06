"""Race against the anchor: the same faults detected and delivered by otel-monitor and, in the same run, by the real
Prometheus evaluating the exported rules and the real Alertmanager, both to one webhook receiver.

The demo (collector, Prometheus scraping every second, Jaeger, Redis, PostgreSQL, the fake providers, the demo
backend exporting metrics every 2 s) and `otel-monitor serve` with the shipped rules (RedisDown resolving 5 s after
Redis is back so runs repeat quickly) checking a Redis of its own, every P0 to the receiver's `/monitor`. The same
rules exported by `otel-monitor export-rules` are loaded into that Prometheus, which alerts a real Alertmanager
loaded with the exported config, its receivers filled in with the receiver's `/alertmanager` (send_resolved).
The Redis gauge Prometheus alerts on is the one the monitor exports (health check status, every second).

Faults: the watched Redis stopped (RedisDown), repeated; a provider's fake set to reject the key and one demo
project calling it (<Service>InvalidApiKey), once per provider. Time from the fault to each side's firing webhook.
Settings (`--settings`):
- tight: Prometheus evaluates each exported group at its interval (5 s for the P0 rules: the monitor's own P0
  cadence); the exported Alertmanager P0 route (group_wait 0s), group_interval 5s so a resolved alert is sent
  before the next run.
- defaults: Prometheus's default evaluation interval (1m, the groups' intervals removed); Alertmanager's defaults on
  the P0 route (group_wait 30s, group_interval 5m); the monitor as shipped (it has no other defaults).
Alertmanager is restarted with empty storage before each fault, so every fault opens a new group (no
notification log from a previous run holds one back), then a random wait of up to one P0 interval puts the fault at
a new phase of the evaluation cycles. Each invalid-key fault prints where the anchor's time went: the counter's
first sample above zero, the evaluation that turned its alert firing, Alertmanager's receipt.

    .venv/bin/python -m bench.race [--settings tight defaults] [--redis-runs 3] [--providers gemini stability]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import statistics
import time
from pathlib import Path

import httpx
import yaml

from examples.monitor_launcher import MonitorProcess
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.monitor.alerting.evaluate.evaluator import DEFAULT_INTERVALS
from otel_monitor.monitor.alerting.export.alertmanager import alertmanager_config
from otel_monitor.monitor.alerting.export.promtool import RULES_FILE
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.monitor.cli import main as otel_monitor_cli
from tests.support.receivers import AlertmanagerServer, Receiver
from tools.devstack import DevStack, StackPorts, free_port, server_workdir, wait_until
from tools.devstack.demo import DemoRun
from tools.devstack.stack import REPO_ROOT

MONITOR, ANCHOR = "otel-monitor", "Prometheus + Alertmanager"
# How long one side may take at most before the run counts it as missed (defaults: 1m evaluation + 30s group_wait).
MISSED_AFTER_SECONDS = 180
REDIS_CODE = "REDIS_CONNECTION_FAILED"
P0_INTERVAL = DEFAULT_INTERVALS[Priority.P0]


class _Alertmanager(AlertmanagerServer):
    """The real Alertmanager with a given config, on a fixed port so Prometheus keeps finding it across restarts."""

    def __init__(self, workdir: Path, config: dict, port: int) -> None:
        super().__init__(workdir)
        self.port = port
        self._given = config

    def _config(self) -> str:
        return yaml.safe_dump(self._given, sort_keys=False)


def _rules(path: Path) -> Path:
    """The shipped rules, RedisDown clearing 5 s after Redis is back (both sides: the export carries it)."""
    rules = yaml.safe_load((REPO_ROOT / "config" / "alert-rules.yaml").read_text())
    rules["thresholds"] = str(REPO_ROOT / "config" / rules["thresholds"])
    for rule in rules["rules"]:
        if rule["name"] == "RedisDown":
            rule["clear_for_seconds"] = 5
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def _alertmanager_config(rules_file: Path, hook_url: str, settings: str) -> dict:
    """The exported config, its receivers delivering to ``hook_url``, the P0 route timed by ``settings``."""
    config = alertmanager_config(load_rules(rules_file, promtool=None))
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": hook_url, "send_resolved": True}]
    p0 = next(route for route in config["route"]["routes"] if f'"{Priority.P0.value}"' in route["matchers"][0])
    if settings == "tight":
        p0["group_interval"] = "5s"
    else:
        p0["group_wait"], p0["group_interval"] = "30s", "5m"
    return config


def _load_into_prometheus(stack: DevStack, exported: Path, alertmanager_port: int, settings: str) -> None:
    rules_path = exported / RULES_FILE
    if settings == "defaults":
        rules = yaml.safe_load(rules_path.read_text())
        for group in rules["groups"]:
            group.pop("interval", None)
        rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
    config_path = stack.workdir / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    config["global"]["evaluation_interval"] = "1m" if settings == "defaults" else config["global"]["scrape_interval"]
    config["rule_files"] = [str(rules_path)]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert httpx.post(f"{stack.prometheus_url}/-/reload", timeout=10).status_code == 200


def _monitor_sent(receiver: Receiver, code: str, status: str, after: int) -> bool:
    return any(
        r["json"]["status"] == status and r["json"]["alert"]["error_code"] == code
        for r in receiver.requests[after:]
        if r["path"] == "/monitor"
    )


def _anchor_sent(receiver: Receiver, code: str, status: str, after: int) -> bool:
    return any(
        alert["status"] == status and alert["labels"].get("error_code") == code
        for r in receiver.requests[after:]
        if r["path"] == "/alertmanager"
        for alert in r["json"]["alerts"]
    )


def _race(receiver: Receiver, code: str, fault_at: float, seen: int) -> dict[str, float | None]:
    """Seconds from ``fault_at`` to each side's firing webhook for ``code`` (None: not within the bound)."""
    arrived: dict[str, float | None] = {MONITOR: None, ANCHOR: None}
    checks = {MONITOR: _monitor_sent, ANCHOR: _anchor_sent}
    while time.monotonic() - fault_at < MISSED_AFTER_SECONDS and None in arrived.values():
        for side, sent in checks.items():
            if arrived[side] is None and sent(receiver, code, "firing", seen):
                arrived[side] = time.monotonic() - fault_at
        time.sleep(0.05)
    return arrived


def _alert_inactive(stack: DevStack, name: str) -> bool:
    query = f'ALERTS{{alertname="{name}"}}'
    response = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
    return not response.json()["data"]["result"]


def _first_sample_at(stack: DevStack, selector: str) -> float | None:
    """Unix time of the first sample above zero Prometheus holds for ``selector`` in the last 15 minutes (None: no
    such sample); counters start at zero, so this is the scrape that first saw the fault."""
    response = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": f"{selector}[15m]"}, timeout=5)
    results = response.json()["data"]["result"]
    stamps = [float(at) for series in results for at, value in series["values"] if float(value) > 0]
    return min(stamps) if stamps else None


def _timeline(stack: DevStack, alertmanager: AlertmanagerServer, code: str, alertname: str, fault_unix: float) -> str:
    """Where the anchor's time went, in seconds after the fault: the counter's first scraped sample, the evaluation
    that turned the alert firing (the ``ALERTS`` sample; ``for: 0`` has no pending step), Alertmanager's receipt."""
    sample = _first_sample_at(stack, f'external_api_errors_total{{error_code="{code}"}}')
    firing = _first_sample_at(stack, f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')
    received = [
        dt.datetime.fromisoformat(alert["updatedAt"]).timestamp()
        for alert in httpx.get(f"{alertmanager.url}/api/v2/alerts", timeout=5).json()
        if alert["labels"].get("alertname") == alertname
    ]
    marks = {"sample": sample, "firing evaluation": firing, "Alertmanager received": min(received, default=None)}
    return ", ".join(f"{name} {_seconds(None if at is None else at - fault_unix)}" for name, at in marks.items())


def _seconds(value: float | None) -> str:
    return "missed" if value is None else f"{value:.1f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settings", nargs="+", choices=["tight", "defaults"], default=["tight"])
    parser.add_argument("--redis-runs", type=int, default=3)
    parser.add_argument("--providers", nargs="+", choices=SERVICE_KEYS, default=list(SERVICE_KEYS))
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict[str, float | None]]] = {}
    for settings in args.settings:
        for fault, runs in _one_run(settings, args.redis_runs, args.providers).items():
            results[settings, fault] = runs
    print(f"\n{'settings':9} {'fault':22} {'runs':>4}   {MONITOR:>20}   {ANCHOR:>26}   {'ratio of medians':>16}")
    for (settings, fault), runs in results.items():
        columns = []
        medians = {}
        for side in (MONITOR, ANCHOR):
            values = [run[side] for run in runs if run[side] is not None]
            missed = len(runs) - len(values)
            medians[side] = statistics.median(values) if values else None
            text = f"{_seconds(medians[side])} / {_seconds(max(values) if values else None)}"
            columns.append(text + (f" ({missed} missed)" if missed else ""))
        ratio = (
            f"{medians[ANCHOR] / medians[MONITOR]:.2f}x" if medians[MONITOR] and medians[ANCHOR] is not None else "-"
        )
        print(f"{settings:9} {fault:22} {len(runs):4d}   {columns[0]:>20}   {columns[1]:>26}   {ratio:>16}")
    print("columns: median / max from the fault to the firing webhook; ratio: anchor's median / otel-monitor's")


def _one_run(settings: str, redis_runs: int, providers: list[str]) -> dict[str, list[dict[str, float | None]]]:
    workdir = server_workdir("otel-monitor-bench-race-")
    watched = DevStack(workdir / "watched", StackPorts.free())
    receiver = Receiver().start()
    rules_file = _rules(workdir / "rules.yaml")
    exported = workdir / "exported"
    assert otel_monitor_cli(["export-rules", "--rules", str(rules_file), "--out", str(exported)]) == 0
    am_config = _alertmanager_config(rules_file, f"{receiver.url}/alertmanager", settings)
    am_port = free_port()  # fixed across Alertmanager restarts: Prometheus's config names it
    alertnames = {rule.error_code: rule.name for rule in load_rules(rules_file, promtool=None)}
    # Each fault starts after the previous one was delivered, i.e. at a fixed phase of Prometheus's evaluation
    # cycle; a random wait of up to one evaluation interval (the P0 group's, or Prometheus's default 1m) spreads the
    # faults over the cycle (seeded: runs repeat).
    phases = random.Random(13)
    cycle_seconds = 60.0 if settings == "defaults" else P0_INTERVAL
    alertmanager: _Alertmanager | None = None

    def alerting_monitor(run: DemoRun) -> MonitorProcess:
        monitor = MonitorProcess(run.stack, workdir / "monitor", health={"redis_url": watched.redis_url})
        monitor.config["alerting"] = {
            "enabled": True,
            "rules_file": str(rules_file),
            "prometheus_url": run.stack.prometheus_url,
            "jaeger_url": run.stack.jaeger_url,
            "delivery": {
                "channels": {"hook": {"type": "webhook", "url": f"{receiver.url}/monitor"}},
                "routing": {"P0": ["hook"], "P1": [], "P2": []},
            },
        }
        return monitor

    def fresh_alertmanager() -> _Alertmanager:
        nonlocal alertmanager
        if alertmanager is not None:
            alertmanager.stop()
        home = workdir / "alertmanager"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        alertmanager = _Alertmanager(home, am_config, am_port).start()
        return alertmanager

    runs: dict[str, list[dict[str, float | None]]] = {"Redis stopped": [], "invalid key": []}
    run = DemoRun(
        workdir,
        components=("collector", "prometheus", "redis", "postgres", "jaeger"),
        scrape_interval="1s",
        monitor=alerting_monitor,
    )
    try:
        watched.start("redis")
        run.start()
        fresh_alertmanager()
        _load_into_prometheus(run.stack, exported, am_port, settings)
        fakes, demo = run.fakes, run.backend
        time.sleep(10)  # first evaluations and scrapes settle
        for index in range(redis_runs):
            fresh_alertmanager()
            time.sleep(phases.uniform(0, cycle_seconds))
            seen = len(receiver.requests)
            watched["redis"].stop()
            fault_at = time.monotonic()
            runs["Redis stopped"].append(_race(receiver, REDIS_CODE, fault_at, seen))
            print(f"{settings} Redis run {index + 1}: {runs['Redis stopped'][-1]}", flush=True)
            back = len(receiver.requests)
            watched.processes["redis"] = watched.redis().start()
            wait_until(lambda back=back: _monitor_sent(receiver, REDIS_CODE, "resolved", back), 120, what="resolved")
            wait_until(lambda: _alert_inactive(run.stack, "RedisDown"), 180, interval=1, what="RedisDown inactive")
        for service in providers:
            code = f"{service.upper().replace('-', '_')}_INVALID_API_KEY"
            current = fresh_alertmanager()
            time.sleep(phases.uniform(0, cycle_seconds))
            seen = len(receiver.requests)
            fakes.set_fault(service, mode="invalid_key")
            fault_at, fault_unix = time.monotonic(), time.time()
            httpx.post(f"{demo.api_url}/api/v1/projects", json={"topic": "t", "steps": [service]}, timeout=10)
            runs["invalid key"].append(_race(receiver, code, fault_at, seen))
            timeline = _timeline(run.stack, current, code, alertnames[code], fault_unix)
            print(f"{settings} {service} invalid key: {runs['invalid key'][-1]}; anchor: {timeline}", flush=True)
            fakes.set_fault(service, mode="ok")
    finally:
        if alertmanager is not None:
            alertmanager.stop()
        run.stop()
        watched.stop()
        receiver.stop()
    return runs


if __name__ == "__main__":
    main()

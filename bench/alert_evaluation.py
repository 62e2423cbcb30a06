"""Cost of alert evaluation: one pass over the shipped rules and over 1,000 synthetic rules, and the monitor at rest.

A pass queries the real Prometheus (of a dev stack with the collector scraped every second) for every PromQL rule
that is due, at most ``--max-concurrent-queries`` at once (each value given is measured in turn, with a client and
connections of its own), then applies the lifecycle; all rules are due in the measured passes, the first one on
cold connections. Check rules read a
health report and quota views given in-process (their own cost is the health check's, measured elsewhere). Then
`otel-monitor serve` with alerting enabled and the shipped rules runs idle for a minute: its RSS and CPU.

    .venv/bin/python -m bench.alert_evaluation [--passes 5] [--max-concurrent-queries 8 [32 ...]]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time

import httpx
import psutil

from examples.monitor_launcher import MonitorProcess
from otel_monitor.monitor.alerting.evaluate.evaluator import Evaluator
from otel_monitor.monitor.alerting.evaluate.sources import DEFAULT_MAX_CONCURRENT_QUERIES, CheckSource, PrometheusSource
from otel_monitor.monitor.alerting.model import Priority, Rule
from otel_monitor.monitor.alerting.rules import load_rules
from tools.devstack import DevStack, StackPorts, server_workdir
from tools.devstack.stack import REPO_ROOT

_HEALTHY = {
    "status": "healthy",
    "checks": {name: {"status": "healthy"} for name in ("database", "redis", "celery", "disk", "ffmpeg")},
}


class _Health:
    async def report(self):
        return _HEALTHY

    async def fresh_report(self, max_age):
        return _HEALTHY


class _Quota:
    def latest(self):
        return []


def _synthetic(count: int) -> list[Rule]:
    return [
        Rule(
            name=f"Synthetic{i}",
            priority=Priority.P1,
            expr=f"sum by (job) (otelcol_process_uptime) > {i}",
            error_code="SYNTHETIC",
            summary="s",
            action_required="a",
            runbook="r",
        )
        for i in range(count)
    ]


async def _pass_seconds(rules: list[Rule], prometheus_url: str, passes: int, max_concurrent: int) -> list[float]:
    async with httpx.AsyncClient() as client:
        sources = {
            "promql": PrometheusSource(
                prometheus_url, http_client=client, timeout=30, max_concurrent_queries=max_concurrent
            ),
            "check": CheckSource(health_service=_Health(), quota_service=_Quota()),
        }
        took = []
        for _ in range(passes):
            evaluator = Evaluator(rules, sources)  # a fresh one: every rule due
            start = time.perf_counter()
            await evaluator.evaluate_once(dt.datetime.now(dt.UTC))
            took.append(time.perf_counter() - start)
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--rest-seconds", type=float, default=60)
    parser.add_argument("--max-concurrent-queries", type=int, nargs="+", default=[DEFAULT_MAX_CONCURRENT_QUERIES])
    args = parser.parse_args()
    workdir = server_workdir("otel-monitor-bench-")
    stack = DevStack(workdir / "stack", StackPorts.free(), scrape_interval="1s")
    shipped = load_rules(REPO_ROOT / "config" / "alert-rules.yaml")
    monitor = None
    try:
        stack.start("prometheus", "redis", "postgres", "jaeger", "collector")
        time.sleep(5)  # a few scrapes
        results = {}
        for bound in args.max_concurrent_queries:
            for name, rules in (("shipped rules", shipped), ("1,000 synthetic rules", _synthetic(1000))):
                took = asyncio.run(_pass_seconds(rules, stack.prometheus_url, args.passes, bound))
                results[name, bound] = (len(rules), took)
        monitor = MonitorProcess(stack, workdir / "monitor")
        monitor.config["alerting"] = {
            "enabled": True,
            "rules_file": str(REPO_ROOT / "config" / "alert-rules.yaml"),
            "prometheus_url": stack.prometheus_url,
            "delivery": {
                "channels": {"log": {"type": "log_file"}},
                "routing": {"P0": ["log"], "P1": ["log"], "P2": ["log"]},
            },
        }
        monitor.start()
        process = psutil.Process(monitor.process.process.pid)
        time.sleep(15)  # start-up done, the first passes run
        cpu_before = process.cpu_times()
        time.sleep(args.rest_seconds)
        cpu_after = process.cpu_times()
        cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / args.rest_seconds
        rss = process.memory_info().rss / 2**20
    finally:
        if monitor is not None:
            monitor.stop()
        stack.stop()
    print(
        f"\n{'rules':24} {'count':>6} {'bound':>6} {'first pass':>11} {'median pass':>12} {'max pass':>10}   "
        f"({args.passes} passes, all rules due)"
    )
    for (name, bound), (count, took) in results.items():
        print(
            f"{name:24} {count:6d} {bound:6d} {took[0] * 1000:9.1f}ms {statistics.median(took) * 1000:10.1f}ms "
            f"{max(took) * 1000:8.1f}ms"
        )
    print(
        f"otel-monitor serve at rest with the shipped rules: RSS {rss:.0f} MiB, CPU {cpu * 100:.1f}% of a core "
        f"(over {args.rest_seconds:.0f} s)"
    )


if __name__ == "__main__":
    main()

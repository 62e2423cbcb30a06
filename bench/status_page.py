"""The status page: time to first byte of ``GET /`` and live update latency, under the demo's traffic.

The real stack, the demo backend and `otel-monitor serve` (health checks refreshed every second, alerting on with a
RedisDown P0 rule) checking a Redis of its own.
- first byte: ``--requests`` sequential ``GET /``, each timed from sending the request to its first byte.
- live update: a WebSocket client of ``/api/v1/alerts/ws?include=status`` (what the page's script opens); the
  watched Redis is stopped and the time until the status message saying ``redis`` is down reaches the client is
  taken (it includes noticing the fault: up to the health refresh interval plus the check's own timeout); Redis is
  started again and the recovery timed the same way. ``--runs`` times.

    .venv/bin/python -m bench.status_page [--requests 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from urllib.parse import urlsplit

import yaml
from websockets.sync.client import connect

from examples.monitor_launcher import MonitorProcess
from tools.devstack import DevStack, StackPorts, server_workdir
from tools.devstack.demo import DemoRun
from tools.devstack.rules import shipped_rule

_RULES = {"rules": [shipped_rule("RedisDown", interval_seconds=1, clear_for_seconds=2)]}


def first_byte_seconds(url: str, requests: int) -> list[float]:
    """Each request's time from sending to the first byte of the answer (one kept-alive connection)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    timings = []
    try:
        for _ in range(requests):
            start = time.perf_counter()
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read(1)
            timings.append(time.perf_counter() - start)
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET / answered {response.status}")
    finally:
        connection.close()
    return timings


def redis_state_change(websocket, state: str, timeout: float = 60) -> float:
    """Reads status messages until one says the redis component is ``state``; the monotonic time it arrived."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(websocket.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message.get("type") != "status":
            continue
        if any(c["name"] == "redis" and c["state"] == state for c in message.get("components", ())):
            return time.monotonic()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = server_workdir("otel-monitor-bench-status-")
    watched = DevStack(workdir / "watched", StackPorts.free())
    (workdir / "rules.yaml").write_text(yaml.safe_dump(_RULES))

    def status_monitor(run: DemoRun) -> MonitorProcess:
        monitor = MonitorProcess(
            run.stack,
            workdir,
            health={"redis_url": watched.redis_url, "cache_ttl_seconds": 1, "check_timeout_seconds": 1},
        )
        monitor.config["alerting"] = {
            "enabled": True,
            "rules_file": "rules.yaml",
            "prometheus_url": run.stack.prometheus_url,
            "jaeger_url": run.stack.jaeger_url,
            # A P0 must reach a channel: the WebSocket's own, which costs nothing here.
            "delivery": {"channels": {"live": {"type": "websocket"}}, "routing": {"P0": ["live"], "P1": [], "P2": []}},
        }
        return monitor

    down_latencies: list[float] = []
    up_latencies: list[float] = []
    run = DemoRun(workdir, scrape_interval="1s", monitor=status_monitor)
    try:
        watched.start("redis")
        run.start()
        url = run.monitor.url
        time.sleep(3)  # the first health runs and provider reads
        first_byte = first_byte_seconds(url, args.requests)
        with connect(url.replace("http://", "ws://") + "/api/v1/alerts/ws?include=status") as websocket:
            for _ in range(args.runs):
                start = time.monotonic()
                watched["redis"].stop()
                down_latencies.append(redis_state_change(websocket, "down") - start)
                start = time.monotonic()
                watched.processes["redis"] = watched.redis().start()
                up_latencies.append(redis_state_change(websocket, "up") - start)
    finally:
        run.stop()
        watched.stop()
    print(f"\n{'measure':44} {'n':>5} {'median':>9} {'p95':>9} {'max':>9}")
    rows = [
        ("GET / time to first byte", first_byte),
        ("Redis stopped -> status message (down)", down_latencies),
        ("Redis started -> status message (up)", up_latencies),
    ]
    for name, values in rows:
        print(
            f"{name:44} {len(values):5d} {1000 * statistics.median(values):7.1f}ms "
            f"{1000 * percentile(values, 0.95):7.1f}ms {1000 * max(values):7.1f}ms"
        )
    print("live updates include noticing the fault: the health refresh (1 s) plus the check's timeout (1 s)")


if __name__ == "__main__":
    main()

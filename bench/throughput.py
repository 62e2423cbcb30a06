"""Throughput without loss: provider calls per second the demo backend sustains, every span and count checked.

Starts the real stack, the fake providers (no injected latency) and the demo backend (uvicorn API + Celery
prefork worker), keeps ``--concurrency`` projects in flight for ``--seconds``, each project calling Gemini and
Stability. Then checks end to end: every project's trace in Jaeger holds all its spans (zero dropped), and
Prometheus counts exactly the calls made. Prints calls/s and the collector's own refused/failed counters.

    .venv/bin/python -m bench.throughput [--seconds 60] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import httpx

from otel_monitor.instrument.metrics import PromNames
from tools.devstack import server_workdir, wait_until
from tools.devstack.demo import DemoRun

STEPS = ["gemini", "stability"]
# Spans of one project: API server span (+ ASGI receive and two sends), task publish, task run, two provider
# calls each with its HTTP client span.
SPANS_PER_PROJECT = 4 + 1 + 1 + 2 * 2


def _prom(url: str, query: str) -> float:
    result = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=30).json()["data"]["result"]
    return sum(float(r["value"][1]) for r in result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=8, help="projects in flight at most")
    parser.add_argument("--worker-processes", type=int, default=2)
    args = parser.parse_args()

    run = DemoRun(
        server_workdir("otel-monitor-bench-"),
        components=("jaeger", "victorialogs", "prometheus", "redis", "collector"),
        scrape_interval="1s",
        backend_options={
            "metric_export_interval": 1.0,
            "worker_processes": args.worker_processes,
            "service_prefix": "bench",
            "extra_env": {"OTEL_MONITOR_CONSOLE_LOGS": "false"},
        },
    )
    with run:
        stack, demo = run.stack, run.backend
        created: list[str] = []
        trace_ids: list[str] = []
        done_ids: set[str] = set()
        deadline = time.monotonic() + args.seconds

        def client_loop() -> None:
            """Posts projects while fewer than --concurrency are unfinished (open loop, bounded queue)."""
            with httpx.Client(timeout=30) as client:
                while time.monotonic() < deadline:
                    if len(created) - len(done_ids) >= args.concurrency:
                        time.sleep(0.005)
                        continue
                    response = client.post(f"{demo.api_url}/api/v1/projects", json={"topic": "t", "steps": STEPS})
                    response.raise_for_status()
                    created.append(response.json()["project_id"])
                    trace_ids.append(response.json()["trace_id"])

        def tail_log() -> None:
            """Reads app.log as it grows, collecting finished projects."""
            path = demo.log_dir / "app.log"
            wait_until(path.exists, 30, what="app.log")
            with open(path) as log:
                while True:
                    line = log.readline()
                    if not line:
                        if time.monotonic() > deadline and set(created) <= done_ids:
                            return
                        if time.monotonic() > deadline + 120:
                            raise TimeoutError("projects still unfinished 120 s after the run")
                        time.sleep(0.05)
                        continue
                    if '"Video project finished"' in line:
                        done_ids.add(json.loads(line).get("project_id"))

        started = time.monotonic()
        tailer = threading.Thread(target=tail_log, daemon=True)
        tailer.start()
        clients = [threading.Thread(target=client_loop) for _ in range(2)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        tailer.join()
        elapsed = time.monotonic() - started
        projects = len(created)
        calls = projects * len(STEPS)
        demo.stop()  # flushes every process

        job = demo.worker_service
        counted = (
            wait_until(
                lambda: (
                    (v := _prom(stack.prometheus_url, f'sum({PromNames.CALL_COUNT}{{job="{job}"}})')) == calls and v
                ),
                60,
                interval=1,
                what="exact counts",
            )
            if calls
            else 0.0
        )

        def traces_in_jaeger() -> list[dict]:
            return httpx.get(
                f"{stack.jaeger_url}/api/traces",
                params={"service": demo.api_service, "limit": projects * 2 + 100, "lookback": "2h"},
                timeout=120,
            ).json()["data"]

        def count_complete(traces: list[dict]) -> int:
            return sum(1 for t in traces if len(t["spans"]) == SPANS_PER_PROJECT)

        latest: list[list[dict]] = [[]]

        def all_traces_arrived() -> bool:
            latest[0] = traces_in_jaeger()
            return count_complete(latest[0]) == projects

        try:  # the collector batches and retries: give the last spans a moment to reach Jaeger
            wait_until(all_traces_arrived, 60, interval=2, what="every trace in Jaeger")
        except TimeoutError:
            pass
        traces = latest[0]
        complete = count_complete(traces)
        if complete != projects:
            found = {t["traceID"] for t in traces}
            missing = [t for t in trace_ids if t not in found]
            for trace_id in missing[:5]:
                one = httpx.get(f"{stack.jaeger_url}/api/traces/{trace_id}", timeout=30)
                print(
                    "missing from search:",
                    trace_id,
                    "index",
                    trace_ids.index(trace_id),
                    "of",
                    len(trace_ids),
                    one.status_code,
                    len(one.json()["data"][0]["spans"]) if one.status_code == 200 else "",
                )
            from collections import Counter

            print(
                "spans per trace:",
                Counter(len(t["spans"]) for t in traces),
                sorted(s["operationName"] for s in traces[0]["spans"]),
            )
        refused = _prom(stack.prometheus_url, "sum(otelcol_receiver_refused_spans_total)")
        failed = _prom(stack.prometheus_url, "sum(otelcol_exporter_send_failed_spans_total)")
        print(
            f"{projects} projects, {calls} provider calls in {elapsed:.1f} s: {calls / elapsed:.1f} calls/s "
            f"({projects / elapsed:.1f} projects/s) with {args.worker_processes} worker processes, "
            f"{args.concurrency} clients"
        )
        print(
            f"Prometheus counted {counted:.0f} of {calls} calls; "
            f"Jaeger holds {complete} complete traces of {projects} ({SPANS_PER_PROJECT} spans each), "
            f"{len(traces)} traces in all"
        )
        print(f"collector: refused spans {refused:.0f}, failed span exports {failed:.0f}")


if __name__ == "__main__":
    main()

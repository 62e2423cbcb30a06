"""`make demo`: the whole stack, the demo backend and fake providers; drives traffic and prints where to look."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from examples.demo_backend.launcher import DEMO_SECRETS, fake_provider_credentials
from examples.fake_providers import FakeProviders
from examples.monitor_launcher import MonitorProcess
from otel_monitor.instrument.metrics import PromNames
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.logs.files import read_log_records
from otel_monitor.monitor.alerting.links import logs_link, logs_query
from tools.devstack import DevStack, StackPorts, server_workdir, wait_until
from tools.devstack.demo import DemoRun
from tools.devstack.stack import REPO_ROOT

API_PORT = 8000
MONITOR_PORT = 8080
PROVIDER_PORTS = {"gemini": 18001, "stability": 18002, "d-id": 18003, "youtube": 18004}
# What stops the demo: Ctrl-C, `kill`/`timeout`/a service manager, the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The credits the fake Stability account starts with, and the baseline the monitor counts them from.
STABILITY_CREDITS = 100.0
QUANTILES_QUERY = "histogram_quantile({q}, sum by (service, le) (rate(" + PromNames.CALL_DURATION + "_bucket[5m])))"


class StopRequested(BaseException):
    """A stop signal arrived. Raised in the main thread wherever it is, so that leaving ``with run:`` stops all the
    demo started; a BaseException like KeyboardInterrupt, so the polling loops that retry on errors let it pass."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_on_stop_signals() -> None:
    def stop(signum: int, frame: object) -> None:
        for stop_signal in STOP_SIGNALS:  # a second signal must not cut the teardown short
            signal.signal(stop_signal, signal.SIG_IGN)
        raise StopRequested(signum)

    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, stop)


def _read_failing_call(log_dir: Path) -> dict | None:
    for line in reversed(read_log_records(log_dir)):
        if line.get("message") == "External API call finished" and line.get("outcome") in ("error", "timeout"):
            return line
    return None


def _finished_projects(log_dir: Path) -> set[str]:
    return {
        line.get("project_id") for line in read_log_records(log_dir) if line.get("message") == "Video project finished"
    }


def _drive(api_url: str, fakes: FakeProviders, log_dir: Path, projects: int) -> None:
    """Three phases, each finished before the faults change (the worker reads the fakes when it runs)."""

    def run(count: int, steps: list[str], topic: str) -> None:
        ids = set()
        for _ in range(count):
            response = httpx.post(f"{api_url}/api/v1/projects", json={"topic": topic, "steps": steps}, timeout=10)
            response.raise_for_status()
            ids.add(response.json()["project_id"])
        wait_until(lambda: ids <= _finished_projects(log_dir), 600, interval=1, what=f"{count} projects to finish")

    fakes.set_fault("gemini", latencies=[0.2, 0.4, 0.8, 1.6])
    fakes.set_fault("stability", latencies=[0.5, 1.0, 3.0])
    fakes.set_fault("d-id", latencies=[0.3, 0.6])
    run(projects, list(SERVICE_KEYS), "sea otters")
    print(f"  {projects} projects through all four providers")
    fakes.set_fault("gemini", mode="invalid_key")
    run(3, ["gemini"], "bad key")
    print("  3 projects while Gemini rejects the API key (GEMINI_INVALID_API_KEY)")
    fakes.set_fault("stability", mode="partial")
    run(2, ["stability"], "partial")
    print("  2 projects while Stability returns 3 of 5 images (partial_failure)")
    for service in SERVICE_KEYS:  # answering at once again: the balance re-reads of the quota report are not slowed
        fakes.set_fault(service, mode="ok", latencies=[0])


def _print_monitor(monitor_url: str, fakes: FakeProviders) -> dict:
    """Health and quota as the monitor reports them, and what the fake providers hold; returns the quotas."""
    health = httpx.get(f"{monitor_url}/api/v1/system/health", timeout=10)
    body = health.json()
    checks = ", ".join(f"{name} {check['status']}" for name, check in body["checks"].items())
    print(f"health ({health.status_code}): {body['status']}: {checks}")
    print(f"  {monitor_url}/api/v1/system/health")
    quota = httpx.get(f"{monitor_url}/api/v1/system/quota", timeout=10).json()["quotas"]
    figure = lambda value: "?" if value is None else f"{value:g}"  # noqa: E731 - None: no reading
    print(
        "quota: "
        + ", ".join(
            f"{name} {figure(q['used'])}/{figure(q['total'])} {q['status']}" + (" (stale)" if q["stale"] else "")
            for name, q in quota.items()
        )
    )
    did, stability = fakes.did_account, fakes.stability_account
    print(
        f"  the fakes hold: stability {stability.credits:g} of {STABILITY_CREDITS:g} credits left, "
        f"d_id {did.remaining} of {did.total}; gemini requests and youtube units are counted by the backend"
    )
    print(f"  {monitor_url}/api/v1/system/quota")
    return quota


def _demo_alerting(stack: DevStack) -> dict:
    """The shipped rules against the demo's Prometheus; notifications to the console, the monitor's log file and
    WebSocket clients of /api/v1/alerts/ws (P1 in digests every 30 minutes, P2 warnings at once; the monitor logs
    every P1 and P2 transition to its log file itself)."""
    channels = {"console": {"type": "console"}, "log": {"type": "log_file"}, "push": {"type": "websocket"}}
    return {
        "enabled": True,
        "rules_file": str(REPO_ROOT / "config" / "alert-rules.yaml"),
        "prometheus_url": stack.prometheus_url,
        "jaeger_url": stack.jaeger_url,
        "logs_url": stack.victorialogs_url,
        "delivery": {
            "channels": channels,
            "routing": {"P0": list(channels), "P1": ["console", "push"], "P2": ["console", "push"]},
        },
    }


def _print_alerts(monitor: MonitorProcess, quota: dict) -> None:
    """Every firing alert once the invalid key's P0 (evaluated every 5 s) and the quota alert of every quota past
    90 % (P1, evaluated every minute on the monitor's quota gauges) fire."""
    expected = {"GEMINI_INVALID_API_KEY"} | {
        f"{name.upper()}_QUOTA_EXCEEDED" for name, q in quota.items() if q["status"] in ("critical", "exceeded")
    }
    last: list[dict] = []

    def firing() -> list[dict]:
        last[:] = httpx.get(f"{monitor.url}/api/v1/alerts", params={"state": "firing"}, timeout=10).json()["alerts"]
        return last if expected <= {a["error_code"] for a in last} else []

    try:
        alerts = wait_until(firing, 150, interval=2, what=f"the alerts {sorted(expected)}")
    except TimeoutError as exc:
        print(f"alerts: {exc}")
        alerts = last
    print("alerts firing (P0 notified at once; P1 logged at once and sent in the next 30-minute digest):")
    for alert in alerts:
        link = "".join(f" {alert[key]}" for key in ("jaeger_url", "logs_url") if alert.get(key))
        print(f"  [{alert['priority']}] {alert['error_code']}: {alert['summary']}{link}")
    print(f"  {monitor.url}/api/v1/alerts; notifications also in {monitor.workdir / 'logs' / 'app.log'}")


def _demo_monitor(run: DemoRun) -> MonitorProcess:
    """The monitor checking the demo's stack, reading the fake providers' balances and alerting with the shipped
    rules."""
    monitor = MonitorProcess(
        run.stack,
        run.workdir / "monitor",
        port=MONITOR_PORT,
        # The demo lasts minutes: balances older than 10 s are re-read when the endpoint asks (default 5 min).
        quota={
            "d_id": {"base_url": run.fakes.base_url("d-id"), "api_key": "${DID_API_KEY}"},
            "stability": {
                "base_url": run.fakes.base_url("stability"),
                "api_key": "${STABILITY_API_KEY}",
                "baseline": STABILITY_CREDITS,
            },
            "stale_after_seconds": 10,
        },
        env={"DID_API_KEY": DEMO_SECRETS["did_api_key"], "STABILITY_API_KEY": DEMO_SECRETS["stability_api_key"]},
    )
    monitor.config["alerting"] = _demo_alerting(run.stack)
    return monitor


def _show(run: DemoRun, projects: int) -> None:
    """Drives the traffic, then prints a failing call's trace and logs, the latency quantiles, health, quota and
    the alerts that fired."""
    stack, fakes, demo, monitor = run.stack, run.fakes, run.backend, run.monitor
    _drive(demo.api_url, fakes, demo.log_dir, projects)
    failing = _read_failing_call(demo.log_dir)
    time.sleep(12)  # one metric export and scrape
    trace_id = failing["trace_id"]
    print()
    print(f"failing call: {failing['service']} {failing.get('error_code')} trace_id={trace_id}")
    print(f"  Jaeger (UI): {stack.jaeger_url}/trace/{trace_id}")
    print(f"  Jaeger (API): {stack.jaeger_url}/api/traces/{trace_id}")
    print(f"  its log lines (VictoriaLogs UI): {logs_link(stack.victorialogs_url, trace_id)}")
    logs_api = f"{stack.victorialogs_url}/select/logsql/query?query={quote(logs_query(trace_id))}"
    print(f"  its log lines (VictoriaLogs API): curl '{logs_api}'")
    print(f"  its log lines (file): jq 'select(.trace_id == \"{trace_id}\")' {demo.log_dir}/app.log")
    print("per-service latency quantiles (Prometheus):")
    for q in (0.5, 0.9, 0.99):
        query = QUANTILES_QUERY.format(q=q)
        result = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query}, timeout=10).json()
        values = {r["metric"].get("service"): round(float(r["value"][1]), 3) for r in result["data"]["result"]}
        print(f"  P{q * 100:g}: {values}")
    print(f"  query: {QUANTILES_QUERY.format(q=0.9)}")
    print(f"  {stack.prometheus_url}/graph?g0.expr={quote(QUANTILES_QUERY.format(q=0.9))}")
    quota = _print_monitor(monitor.url, fakes)
    _print_alerts(monitor, quota)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--projects", type=int, default=12)
    when_done = parser.add_mutually_exclusive_group()
    when_done.add_argument(
        "--exit",
        action="store_true",
        default=bool(os.environ.get("DEMO_EXIT")),
        help="stop after printing instead of serving until Ctrl-C or SIGTERM",
    )
    when_done.add_argument(
        "--serve-only",
        action="store_true",
        help="start everything and serve until Ctrl-C or SIGTERM, driving no traffic",
    )
    args = parser.parse_args()

    # Before anything starts: a stop signal at any point (start-up included) unwinds through `with run:`.
    _raise_on_stop_signals()
    run = DemoRun(
        server_workdir("otel-monitor-demo-"),
        ports=StackPorts(),
        fakes=FakeProviders(ports=PROVIDER_PORTS, stability_credits=STABILITY_CREDITS, **fake_provider_credentials()),
        backend_options={"api_port": API_PORT, "metric_export_interval": 5.0, "log_dir": REPO_ROOT / "logs"},
        monitor=_demo_monitor,
    )
    print(
        "starting Jaeger, VictoriaLogs, Prometheus, Redis, PostgreSQL and the OpenTelemetry Collector ...", flush=True
    )
    try:
        with run:
            doing = "serving, no traffic" if args.serve_only else "driving traffic ..."
            print(f"demo backend on {run.backend.api_url}, otel-monitor on {run.monitor.url}; {doing}", flush=True)
            if not args.serve_only:
                _show(run, args.projects)
            if not args.exit:
                print("\nrunning; Ctrl-C or SIGTERM stops everything", flush=True)
                while True:
                    signal.pause()
    except StopRequested as stop:
        print(f"\n{stop}: everything the demo started is stopped", flush=True)
        # Die of the signal itself, as a program that had not caught it would: shells and service managers read it.
        signal.signal(stop.signum, signal.SIG_DFL)
        os.kill(os.getpid(), stop.signum)


if __name__ == "__main__":
    main()

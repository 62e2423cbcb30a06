"""How evaluation and delivery cost grow: one evaluation pass with 50/200/800 rules, outbox delivery of 10/100/1000
alerts.

Evaluation: the Evaluator with every rule due (a fresh one per pass), synthetic PromQL rules
(`sum by (job) (otelcol_process_uptime) > N`, as in bench.alert_evaluation) against the real Prometheus of a dev
stack scraping the collector every second, at most `alerting.max_concurrent_queries` (default) queries at once.
Delivery: N firing alerts enqueued for one webhook channel in an outbox on the real PostgreSQL (the replicas'
store), then the Dispatcher's passes (the channel's default concurrency) until every row is delivered to a local
webhook receiver: enqueue time and delivery time, per alert.

    .venv/bin/python -m bench.rule_scaling [--rules 50 200 800] [--alerts 10 100 1000] [--passes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from bench.alert_evaluation import _pass_seconds, _synthetic
from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
from otel_monitor.monitor.alerting.delivery.outbox import DeliveryStatus, Outbox
from otel_monitor.monitor.alerting.evaluate.sources import DEFAULT_MAX_CONCURRENT_QUERIES
from otel_monitor.monitor.alerting.notifiers import WebhookNotifier
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings
from otel_monitor.redaction.scrubber import SecretScrubber
from tests.support.alerts import make_alert
from tests.support.backends import fresh_postgres_database
from tests.support.receivers import Receiver
from tools.devstack import DevStack, StackPorts, server_workdir

CHANNEL = "hook"
DEFAULT_CHANNEL_CONCURRENCY = ChannelSettings.model_fields["max_concurrency"].default


async def _deliver_all(outbox: Outbox, receiver: Receiver, count: int) -> None:
    """The Dispatcher's passes until ``count`` rows are delivered; one shared HTTP client, as `serve` has."""
    async with httpx.AsyncClient() as client:
        notifier = WebhookNotifier(CHANNEL, f"{receiver.url}/hook", client=client, timeout=5, scrubber=SecretScrubber())
        dispatcher = Dispatcher(outbox, {CHANNEL: notifier}, concurrency={CHANNEL: DEFAULT_CHANNEL_CONCURRENCY})
        tried = 0
        while tried < count:  # the receiver answers 200: every attempt delivers
            passed = (await dispatcher.run_once()).get(CHANNEL, 0)
            if not passed:
                raise RuntimeError("a pass delivered nothing while rows were left")
            tried += passed


def _delivery(store_url: str, receiver: Receiver, count: int) -> tuple[float, float]:
    """Seconds to enqueue ``count`` firing alerts, and seconds to deliver them all."""
    outbox = Outbox(store_url)
    try:
        alerts = [make_alert(fingerprint=f"{count:04d}{index:012d}") for index in range(count)]
        start = time.perf_counter()
        for alert in alerts:
            outbox.enqueue(alert, "firing", [CHANNEL])
        enqueued = time.perf_counter() - start
        before = len(receiver.requests)
        start = time.perf_counter()
        asyncio.run(_deliver_all(outbox, receiver, count))
        delivered = time.perf_counter() - start
        assert len(receiver.requests) - before == count, "each alert delivered once"
        assert len(outbox.entries(status=DeliveryStatus.DELIVERED)) == count
        return enqueued, delivered
    finally:
        outbox.close()
        outbox.executor.shutdown()


def _growth(counts: list[int], seconds: list[float]) -> str:
    """Each size's time as a multiple of the smallest's, beside the multiple of the size."""
    if not counts:
        return "not measured"
    pairs = zip(counts[1:], seconds[1:], strict=True)
    return ", ".join(f"{count / counts[0]:g}x size: {took / seconds[0]:.2f}x time" for count, took in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, nargs="*", default=[50, 200, 800])
    parser.add_argument("--alerts", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    workdir = server_workdir("otel-monitor-bench-scaling-")
    stack = DevStack(workdir / "stack", StackPorts.free(), scrape_interval="1s")
    receiver = Receiver().start()
    evaluation: dict[int, list[float]] = {}
    delivery: dict[int, tuple[float, float]] = {}
    try:
        stack.start("prometheus", "postgres", "collector")
        time.sleep(5)  # a few scrapes
        for count in args.rules:
            evaluation[count] = asyncio.run(
                _pass_seconds(_synthetic(count), stack.prometheus_url, args.passes, DEFAULT_MAX_CONCURRENT_QUERIES)
            )
        for count in args.alerts:  # an empty outbox for each size
            delivery[count] = _delivery(fresh_postgres_database(stack.postgres_url, "scaling"), receiver, count)
    finally:
        receiver.stop()
        stack.stop()
    print(
        f"\n{'rules':>6} {'median pass':>12} {'max pass':>10} {'per rule':>10}   "
        f"({args.passes} passes, all rules due, {DEFAULT_MAX_CONCURRENT_QUERIES} queries at once)"
    )
    medians = [statistics.median(evaluation[count]) for count in args.rules]
    for count, median in zip(args.rules, medians, strict=True):
        worst = max(evaluation[count])
        print(f"{count:6d} {median * 1000:10.1f}ms {worst * 1000:8.1f}ms {median / count * 1000:8.2f}ms")
    print("evaluation: " + _growth(args.rules, medians))
    print(
        f"\n{'alerts':>6} {'enqueue':>10} {'per alert':>10} {'deliver':>10} {'per alert':>10}   "
        f"(PostgreSQL outbox, one webhook channel, {DEFAULT_CHANNEL_CONCURRENCY} at once)"
    )
    for count, (enqueued, delivered) in delivery.items():
        print(
            f"{count:6d} {enqueued * 1000:8.1f}ms {enqueued / count * 1000:8.2f}ms "
            f"{delivered * 1000:8.1f}ms {delivered / count * 1000:8.2f}ms"
        )
    print("delivery: " + _growth(args.alerts, [delivery[count][1] for count in args.alerts]))


if __name__ == "__main__":
    main()

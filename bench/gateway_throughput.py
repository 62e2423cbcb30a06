"""Spans per second ONE tail-sampling gateway (collector/gateway.yaml) sustains with zero loss, every span checked.

Starts Jaeger and one gateway, then for each rate of ``--rates`` (spans/s, increasing) a fresh gateway and
``--senders`` processes posting OTLP/HTTP protobuf batches at that fixed rate for ``--seconds``: traces of
``SPANS_PER_TRACE`` spans (an API span, a task span and provider calls), ``--error-share`` of them with a failed
provider call (error status, external_api.outcome=error), every trace ID new. After the gateway has decided every
trace, loss is checked exactly from the gateway's own telemetry and what reached the downstream:

- the receiver accepted every span sent and refused none (the memory limiter refuses at the receiver);
- the span metrics (computed before sampling) count every span sent;
- tail sampling decided every trace (sampled + not sampled = traces sent, none dropped too early), kept every
  trace with a failed call, and the Jaeger exporter sent exactly the kept traces' spans, none failed;
- a sample of the failed-call traces is complete in Jaeger.

The highest rate passing all of these is G, the figure docs/SCALING.md derives the tier from. Also prints the
gateway's CPU seconds per 1,000 spans (less noisy on a shared host than the rate) and the rate the trace buffer
caps at with the shipped decision_wait and num_traces.

    .venv/bin/python -m bench.gateway_throughput [--rates 2000,5000,10000,20000,40000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import http.client
import math
import multiprocessing
import os
import random
import re
import statistics
import time
from dataclasses import dataclass

import httpx
import psutil
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tools.devstack import server_workdir, wait_until
from tools.devstack.stack import DevStack, StackPorts
from tools.devstack.tier import GATEWAY_CONFIG, CollectorTier

# One trace: the API request, its task, and three provider calls under the task (the last one fails in an error
# trace). Five spans, as many as a one-step demo project's API, task and call spans.
SPAN_NAMES = ["POST /api/v1/projects", "run/video.generate", "gemini generateContent", "stability text-to-image"]
SPANS_PER_TRACE = 5
TRACES_PER_BATCH = 100
DEMO_SPANS_PER_TRACE = 10  # a demo project's trace (two provider calls), the reference load of docs/SCALING.md
SPAN_DURATION_NS = 50_000_000  # far below the slow-trace threshold: only errors and the share decide
# A step whose senders reached less than this share of its rate did not hold it (the senders could not drive it, or
# the gateway answered too slowly): inconclusive, not a loss, and the sweep stops there.
HELD_RATE_SHARE = 0.95
TRACE_ID_MARK = b"\xee\xee\xee\xee"  # a trace ID placeholder is this mark + 12 bytes of index


def _attr(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _template(error_traces: set[int]) -> tuple[bytes, list[bytes]]:
    """A serialized batch of TRACES_PER_BATCH traces and each trace's placeholder ID (replaced before each send)."""
    now = time.time_ns()
    placeholders = [TRACE_ID_MARK + index.to_bytes(12, "big") for index in range(TRACES_PER_BATCH)]
    spans = []
    for index, trace_id in enumerate(placeholders):
        root = (index * 8 + 1).to_bytes(8, "big")
        task = (index * 8 + 2).to_bytes(8, "big")
        layout = [
            (root, b"", SPAN_NAMES[0], Span.SPAN_KIND_SERVER, []),
            (task, root, SPAN_NAMES[1], Span.SPAN_KIND_CONSUMER, []),
            ((index * 8 + 3).to_bytes(8, "big"), task, SPAN_NAMES[2], Span.SPAN_KIND_CLIENT, ["gemini", "success"]),
            ((index * 8 + 4).to_bytes(8, "big"), task, SPAN_NAMES[3], Span.SPAN_KIND_CLIENT, ["stability", "success"]),
            ((index * 8 + 5).to_bytes(8, "big"), task, SPAN_NAMES[2], Span.SPAN_KIND_CLIENT, ["gemini", "success"]),
        ]
        for position, (span_id, parent, name, kind, call) in enumerate(layout):
            failed = index in error_traces and position == len(layout) - 1
            attributes = []
            if call:
                outcome = "error" if failed else call[1]
                attributes = [_attr("external_api.service", call[0]), _attr("external_api.outcome", outcome)]
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent,
                    name=name,
                    kind=kind,
                    start_time_unix_nano=now,
                    end_time_unix_nano=now + SPAN_DURATION_NS,
                    attributes=attributes,
                    status=Status(code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_OK),
                )
            )
    resource = ResourceSpans(
        resource={"attributes": [_attr("service.name", "bench-gateway")]},
        scope_spans=[ScopeSpans(scope={"name": "bench.gateway_throughput"}, spans=spans)],
    )
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString(), placeholders


@dataclass
class SenderResult:
    spans: int
    traces: int
    error_traces: list[str]  # hex trace IDs
    failed_posts: int
    behind_seconds: float  # how far the latest batch left after its planned time
    elapsed_seconds: float
    answer_seconds: list[float]  # each post's round trip: how long the gateway took to accept a batch


def _send(port: int, spans_per_second: float, seconds: float, error_share: float, seed: int, out) -> None:
    """One sender process: batches at a fixed pace, each with fresh trace IDs."""
    rng = random.Random(seed)
    errors_per_batch = round(TRACES_PER_BATCH * error_share)
    error_slots = set(range(errors_per_batch))
    template, placeholders = _template(error_slots)
    # The template cut at every placeholder: joining its pieces with fresh IDs costs one copy of the batch.
    pattern = re.compile(re.escape(TRACE_ID_MARK) + b".{12}", re.DOTALL)
    slot_of = {placeholder: slot for slot, placeholder in enumerate(placeholders)}
    slots = [slot_of[match.group(0)] for match in pattern.finditer(template)]
    segments = pattern.split(template)
    interval = TRACES_PER_BATCH * SPANS_PER_TRACE / spans_per_second
    batches = max(1, int(seconds / interval))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    error_traces: list[str] = []
    failed = 0
    start = time.monotonic()
    behind = 0.0
    answers: list[float] = []
    for batch in range(batches):
        planned = start + batch * interval
        pause = planned - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            behind = max(behind, -pause)
        trace_ids = [rng.randbytes(16) for _ in placeholders]
        error_traces.extend(trace_ids[slot].hex() for slot in error_slots)
        body = bytearray(segments[0])
        for slot, segment in zip(slots, segments[1:], strict=True):
            body += trace_ids[slot]
            body += segment
        posted = time.monotonic()
        connection.request("POST", "/v1/traces", bytes(body), {"Content-Type": "application/x-protobuf"})
        response = connection.getresponse()
        answer = ExportTraceServiceResponse.FromString(response.read())
        answers.append(time.monotonic() - posted)
        if response.status != 200 or answer.partial_success.rejected_spans:
            failed += 1
    connection.close()
    traces = batches * TRACES_PER_BATCH
    elapsed = time.monotonic() - start + interval  # the last batch stands for one interval of the schedule
    out.put(SenderResult(traces * SPANS_PER_TRACE, traces, error_traces, failed, behind, elapsed, answers))


def _counters(port: int) -> dict[str, float]:
    """The gateway's own counters (and the span metrics), summed by name and the labels that matter here."""
    totals: dict[str, float] = {}
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = re.match(r"([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)", line)
        if not match:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        kept = {
            key: label
            for key, label in re.findall(r'(\w+)="([^"]*)"', labels)
            if key in ("exporter", "policy", "sampled", "decision")
        }
        key = name + "".join(f"[{k}={v}]" for k, v in sorted(kept.items()))
        totals[key] = totals.get(key, 0.0) + value
    return totals


def _total(counters: dict[str, float], prefix: str, **labels: str) -> float:
    wanted = "".join(f"[{k}={v}]" for k, v in sorted(labels.items()))
    return sum(value for key, value in counters.items() if key.startswith(prefix) and wanted in key)


def _jaeger_complete(stack: DevStack, trace_id: str) -> bool:
    response = httpx.get(f"{stack.jaeger_url}/api/traces/{trace_id}", timeout=10)
    if response.status_code != 200:
        return False
    data = response.json().get("data") or []
    return bool(data) and len(data[0]["spans"]) == SPANS_PER_TRACE


def _shipped_default(value: str) -> float:
    """The default of a ``${env:NAME:-default}`` setting of the gateway config, as a number (``60s`` -> 60)."""
    return float(re.search(r":-(\d+)s?\}", value).group(1))  # type: ignore[union-attr]


def _buffer_bound_traces() -> float:
    """Traces/s at which the shipped trace buffer (num_traces held for decision_wait) is full: past it, traces are
    dropped before their decision, however fast the CPU."""
    config = yaml.safe_load(GATEWAY_CONFIG.read_text())["processors"]["tail_sampling"]
    return _shipped_default(config["num_traces"]) / _shipped_default(config["decision_wait"])


def run_step(stack: DevStack, rate: float, args) -> dict:
    """One fixed rate against a fresh gateway: what was sent, what the gateway and Jaeger say, and the verdict."""
    tier = CollectorTier(
        stack,
        gateways=1,
        decision_wait=f"{args.decision_wait:g}s",
        num_traces=args.num_traces,
        slow_trace_ms=600_000,
    )
    gateway = tier.gateway(0).start()
    ports = tier.gateway_ports[0]
    try:
        process = psutil.Process(gateway.process.pid)
        before = _counters(ports.telemetry)
        cpu_before = sum(process.cpu_times()[:2])
        queue: multiprocessing.Queue = multiprocessing.Queue()
        senders = [
            multiprocessing.Process(
                target=_send,
                args=(ports.otlp_http, rate / args.senders, args.seconds, args.error_share, hash((rate, i)), queue),
            )
            for i in range(args.senders)
        ]
        for sender in senders:
            sender.start()
        results = [queue.get(timeout=args.seconds * 4 + 60) for _ in senders]
        for sender in senders:
            sender.join()
        spans = sum(r.spans for r in results)
        traces = sum(r.traces for r in results)
        error_traces = [t for r in results for t in r.error_traces]

        def decided() -> dict[str, float] | None:
            now = _counters(ports.telemetry)
            done = _total(now, "otelcol_processor_tail_sampling_global_count_traces_sampled") - _total(
                before, "otelcol_processor_tail_sampling_global_count_traces_sampled"
            )
            return now if done >= traces else None

        try:
            after = wait_until(decided, args.decision_wait * 2 + 60, interval=1, what="every trace decided")
        except TimeoutError:
            after = _counters(ports.telemetry)
        time.sleep(3)  # the sampled batch (1 s timeout) leaves for Jaeger
        after = _counters(ports.telemetry)
        cpu = sum(process.cpu_times()[:2]) - cpu_before

        def span_metrics_flushed() -> dict[str, float] | None:  # flushed every metrics_flush_interval (5 s)
            now = _counters(ports.prometheus)
            return now if _total(now, "traces_span_metrics_calls_total") >= spans else None

        try:
            span_metrics = wait_until(span_metrics_flushed, 15, interval=1, what="span metrics flushed")
        except TimeoutError:
            span_metrics = _counters(ports.prometheus)
    finally:
        gateway.stop()

    def delta(prefix: str, **labels: str) -> float:
        return _total(after, prefix, **labels) - _total(before, prefix, **labels)

    sampled = delta("otelcol_processor_tail_sampling_global_count_traces_sampled", sampled="true")
    not_sampled = delta("otelcol_processor_tail_sampling_global_count_traces_sampled", sampled="false")
    figures = {
        "rate": rate,
        "sent_spans": spans,
        "sent_traces": traces,
        "achieved_rate": spans / max(r.elapsed_seconds for r in results),
        "sender_behind_s": max(r.behind_seconds for r in results),
        "failed_posts": sum(r.failed_posts for r in results),
        "post_answer_ms_median": statistics.median(a for r in results for a in r.answer_seconds) * 1000,
        "post_answer_ms_max": max(a for r in results for a in r.answer_seconds) * 1000,
        "accepted": delta("otelcol_receiver_accepted_spans"),
        "refused": delta("otelcol_receiver_refused_spans"),
        "span_metric_calls": _total(span_metrics, "traces_span_metrics_calls_total"),
        "sampled_traces": sampled,
        "not_sampled_traces": not_sampled,
        "dropped_too_early": delta("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early"),
        "jaeger_sent": delta("otelcol_exporter_sent_spans", exporter="otlp_grpc/jaeger"),
        "jaeger_failed": delta("otelcol_exporter_send_failed_spans") + delta("otelcol_exporter_enqueue_failed_spans"),
        "cpu_s_per_1000_spans": cpu / spans * 1000,
        "error_traces": len(error_traces),
    }
    sample = random.Random(0).sample(error_traces, min(args.check_traces, len(error_traces)))
    figures["error_traces_complete_in_jaeger"] = sum(_jaeger_complete(stack, t) for t in sample)
    figures["error_traces_checked"] = len(sample)
    figures["accepted/sent"] = figures["accepted"] / spans
    figures["span_metric_calls/sent"] = figures["span_metric_calls"] / spans
    figures["decided/sent traces"] = (sampled + not_sampled) / traces
    figures["kept/sent traces"] = sampled / traces
    figures["pace_kept"] = figures["achieved_rate"] >= HELD_RATE_SHARE * rate
    checks = {
        "accepted all": figures["accepted"] == spans and figures["refused"] == 0 and figures["failed_posts"] == 0,
        "span metrics count all": figures["span_metric_calls"] == spans,
        "every trace decided": sampled + not_sampled == traces and figures["dropped_too_early"] == 0,
        "failed calls kept": sampled >= len(error_traces),
        "kept spans sent": figures["jaeger_sent"] == sampled * SPANS_PER_TRACE and figures["jaeger_failed"] == 0,
        "complete in Jaeger": figures["error_traces_complete_in_jaeger"] == len(sample),
    }
    figures["failed_checks"] = [name for name, ok in checks.items() if not ok]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="2000,5000,10000,20000,40000", help="spans/s, increasing")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--senders", type=int, default=12, help="sender processes, one batch in flight each")
    parser.add_argument(
        "--decision-wait", type=float, default=5, help="seconds; short so a step is decided soon after it ends"
    )
    parser.add_argument("--num-traces", type=int, default=100_000, help="the gateway's trace buffer")
    parser.add_argument("--error-share", type=float, default=0.1, help="share of traces with a failed call")
    parser.add_argument("--check-traces", type=int, default=20, help="failed-call traces looked up in Jaeger")
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]

    workdir = server_workdir("otel-monitor-bench-gateway-")
    stack = DevStack(workdir, StackPorts.free())
    best = 0.0
    stopped_by = "the last rate of --rates"
    cpu_per_1000: list[float] = []
    with stack.start("jaeger"):
        for rate in rates:
            figures = run_step(stack, rate, args)
            if figures["failed_checks"]:
                verdict = f"LOSS: {', '.join(figures['failed_checks'])}"
            elif not figures["pace_kept"]:
                verdict = "no loss, but the rate was not held (senders behind schedule): inconclusive"
            else:
                verdict = "ZERO LOSS"
            print(f"\n{rate:,.0f} spans/s: {verdict}")
            for key, value in figures.items():
                if key not in ("rate", "failed_checks", "pace_kept"):
                    print(f"  {key:34} {value:,.3f}" if isinstance(value, float) else f"  {key:34} {value}")
            if figures["failed_checks"] or not figures["pace_kept"]:
                stopped_by = "loss" if figures["failed_checks"] else "the senders' pace"
                break
            best = rate
            cpu_per_1000.append(figures["cpu_s_per_1000_spans"])
    cores = os.cpu_count() or 1
    print(f"\nG (highest rate with zero loss): {best:,.0f} spans/s on {cores} cores; the sweep stopped at {stopped_by}")
    if cpu_per_1000:
        median = sorted(cpu_per_1000)[len(cpu_per_1000) // 2]
        print(f"gateway CPU: {median:.4f} s per 1,000 spans (median of passing steps)")
        print(f"  -> one core's worth: {1000 / median:,.0f} spans/s; {cores} cores: {cores * 1000 / median:,.0f}")
    bound_traces = _buffer_bound_traces()
    print(
        f"trace buffer bound of the shipped config (num_traces / decision_wait): {bound_traces:,.0f} traces/s per"
        f" gateway, i.e. {bound_traces * DEMO_SPANS_PER_TRACE:,.0f} spans/s of the demo's"
        f" {DEMO_SPANS_PER_TRACE}-span traces"
    )
    if best:
        for load, spans_per_second in (("1x", 1_000), ("10x", 10_000), ("100x", 100_000)):
            gateways = math.ceil(spans_per_second / best) + 1
            print(f"  {load}: {spans_per_second:,} spans/s -> ceil({spans_per_second:,} / G) + 1 = {gateways} gateways")


if __name__ == "__main__":
    main()

"""Overhead per external call: plain httpx vs upstream httpx instrumentation vs otel-monitor, in one process.

The transport answers in-process (an httpcore pool stub under the real ``httpx.HTTPTransport``), so the
numbers are the instrumentation's own cost, not loopback noise. Modes are interleaved round by round and the
median per-call CPU time of each mode is compared: overhead = mode - plain; the target is
otel_monitor overhead <= 1.3 x upstream overhead. The ratio is also taken within each round and its median and
quartiles printed: on a shared host the load moves between rounds, less within one. Two figures per mode: CPU of
the calling thread (what the call waits for) and of the whole process (what the host pays in all: the log writer,
the span exporter and a metrics collection per round, where otel-monitor records its queued histograms). The last
mode records those histograms on the calling thread instead, as before they were queued.

    .venv/bin/python -m bench.call_overhead [--calls 2000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import tempfile
import time

import httpcore
import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_monitor.instrument.external_calls import ExternalCallRecorder
from otel_monitor.instrument.metrics import CollectionTimeRecords
from otel_monitor.instrument.provider_http import instrument_provider_calls, uninstrument_provider_calls
from otel_monitor.instrument.providers import ProviderRegistry
from otel_monitor.logs.configure import configure_logging

URL = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
# A Gemini answer with its token counts: otel-monitor reads them (GenAI attributes and token histogram).
BODY = (
    b'{"candidates":[{"content":{"parts":[{"text":"ok"}]}}],'
    b'"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":30,"totalTokenCount":42},'
    b'"modelVersion":"gemini-2.5-flash"}'
)


class _AnsweringPool:
    """Stands in for httpcore's connection pool: answers every request at once."""

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        return httpcore.Response(200, headers=[(b"content-type", b"application/json")], content=BODY)

    def close(self) -> None:
        pass


class _DroppingExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def _client() -> httpx.Client:
    transport = httpx.HTTPTransport()
    transport._pool = _AnsweringPool()
    return httpx.Client(transport=transport)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def _per_call_seconds(client: httpx.Client, calls: int, reader: InMemoryMetricReader) -> tuple[float, float]:
    """CPU seconds per call: (of the calling thread, of the whole process: the log writer thread and a metrics
    collection included, since otel-monitor records its histograms when metrics are collected).

    CPU time, not wall-clock, so other load on this shared machine moves the numbers less.
    """
    _flush_logs()
    reader.get_metrics_data()
    gc.collect()  # each mode starts with no garbage of the one before
    thread_start, process_start = time.thread_time(), time.process_time()
    for _ in range(calls):
        client.post(URL, content=b"{}").read()
    caller = time.thread_time() - thread_start
    _flush_logs()
    reader.get_metrics_data()  # what a periodic reader does on its own thread
    return caller / calls, (time.process_time() - process_start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_DroppingExporter(), max_queue_size=1 << 20))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    recorder = ExternalCallRecorder(tracer_provider, meter_provider)
    # the same, its histograms recorded into the SDK on the calling thread (as before they were queued for collection)
    recording_at_once = ExternalCallRecorder(tracer_provider, meter_provider)
    recording_at_once.histograms = CollectionTimeRecords(limit=0)
    registry = ProviderRegistry()
    upstream = HTTPXClientInstrumentor()
    log_dir = tempfile.mkdtemp(prefix="otel-monitor-bench-")
    configure_logging(log_dir=log_dir, level="INFO", console=False, background=True)
    root = logging.getLogger()

    def plain():
        pass

    def upstream_only():
        upstream.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def otel_monitor(level: str, calls: ExternalCallRecorder = recorder):
        def enable():
            root.setLevel(level)
            instrument_provider_calls(calls, registry)
            upstream.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

        return enable

    modes = {
        "plain httpx": plain,
        "upstream instrumentation": upstream_only,
        "otel-monitor (default, INFO)": otel_monitor("INFO"),
        "otel-monitor (every call logged)": otel_monitor("DEBUG"),
        "otel-monitor (histograms at once)": otel_monitor("INFO", recording_at_once),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    client = _client()
    for enable in modes.values():  # warm-up
        enable()
        _per_call_seconds(client, 200, reader)
        upstream.uninstrument() if upstream.is_instrumented_by_opentelemetry else None
        uninstrument_provider_calls()
    for _ in range(args.rounds):
        for name, enable in modes.items():
            enable()
            samples[name].append(_per_call_seconds(client, args.calls, reader))
            if upstream.is_instrumented_by_opentelemetry:
                upstream.uninstrument()
            uninstrument_provider_calls()
            root.setLevel("INFO")
    columns = ((0, "CPU of the calling thread"), (1, "CPU of the whole process (log writer and collection included)"))
    for column, title in columns:
        medians = {name: statistics.median(v[column] for v in values) for name, values in samples.items()}
        base = medians["plain httpx"]
        upstream_overhead = medians["upstream instrumentation"] - base
        print(f"\nper call, {title}")
        print(f"{'mode':36} {'per call':>10} {'overhead':>10} {'vs upstream':>12}")
        for name, median in medians.items():
            overhead = median - base
            ratio = f"{overhead / upstream_overhead:11.2f}x" if name != "plain httpx" else f"{'-':>12}"
            print(f"{name:36} {median * 1e6:8.1f} us {overhead * 1e6:8.1f} us {ratio}")
        # the same ratio within each round (the modes of a round ran seconds apart, under the same load elsewhere)
        print("ratio to upstream's overhead within each round: median [quartiles]")
        for name in list(modes)[2:]:
            ratios = sorted(_round_ratio(samples, name, round_, column) for round_ in range(args.rounds))
            low, median, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            print(f"  {name:34} {statistics.median(ratios):5.2f}x [{low:.2f}-{high:.2f}]")
    print(f"({args.rounds} rounds x {args.calls} calls, median per mode; target: otel-monitor <= 1.30x upstream)")


def _round_ratio(samples: dict[str, list[tuple[float, float]]], name: str, round_: int, column: int) -> float:
    """``name``'s overhead over upstream's in one round: each measured against plain httpx of the same round."""
    plain = samples["plain httpx"][round_][column]
    return (samples[name][round_][column] - plain) / (samples["upstream instrumentation"][round_][column] - plain)


if __name__ == "__main__":
    main()

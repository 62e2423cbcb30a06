"""The Telemetry pipeline dashboard: the collector's own health and the span-metrics RED view of every service."""

from __future__ import annotations

from otel_monitor.monitor.alerting.thresholds import Thresholds
from tools.dashboards.business import OVER_RANGE
from tools.dashboards.grafana import Board, bargauge, query_variable, stat, target, timeseries
from tools.dashboards.promql import over_range, quantile, rate, selector, share, total

__all__ = ["pipeline"]

CALLS = "traces_span_metrics_calls_total"
DURATION_BUCKETS = "traces_span_metrics_duration_milliseconds_bucket"
SERVICES = 'service_name=~"$service_name"'
ENTRY_SPANS = 'span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"'
ERROR = 'status_code="STATUS_CODE_ERROR"'


def _counted(*counters: str) -> str:
    """The sum of ``counters``' exact increases over the range, a counter never written counting 0."""
    return " + ".join(f"sum({over_range(counter)} or vector(0))" for counter in counters)


def pipeline(thresholds: Thresholds) -> dict:
    """The dashboard model (no spec thresholds: the collector's own limits)."""
    board = Board(
        "otel-monitor-pipeline",
        "Telemetry pipeline",
        "The collector's own health (accepted, refused and dropped data, exporter queues) and the span-metrics RED "
        "view of every service.",
        "pipeline",
        [query_variable("service_name", "Service", CALLS, "service_name")],
    )
    board.row("Collector")
    board.add(
        stat(
            "Collector uptime",
            "Seconds since the collector started; a reset is a restart.",
            [target("min(otelcol_process_uptime)", instant=True)],
            unit="s",
            decimals=0,
        ),
        4,
        5,
    )
    board.add(
        stat(
            "Spans accepted/s",
            "Spans the receivers took in, per second.",
            [target(total(rate("otelcol_receiver_accepted_spans")), instant=True)],
            decimals=1,
        ),
        4,
        5,
    )
    refused = _counted(
        "otelcol_receiver_refused_spans",
        "otelcol_receiver_refused_metric_points",
        "otelcol_receiver_failed_spans",
        "otelcol_receiver_failed_metric_points",
    )
    dropped = _counted(
        "otelcol_exporter_send_failed_spans",
        "otelcol_exporter_send_failed_metric_points",
        "otelcol_exporter_enqueue_failed_spans",
        "otelcol_exporter_enqueue_failed_metric_points",
    )
    any_is_bad = (("green", None), ("red", 1))
    board.add(
        stat(
            "Refused or failed items",
            f"Spans and metric points the receivers refused (memory limiter) or failed to pass on. {OVER_RANGE}",
            [target(refused, instant=True)],
            decimals=0,
            thresholds=any_is_bad,
        ),
        4,
        5,
    )
    board.add(
        stat(
            "Dropped by exporters",
            f"Spans and points given up after retries or refused by a full queue. {OVER_RANGE}",
            [target(dropped, instant=True)],
            decimals=0,
            thresholds=any_is_bad,
        ),
        4,
        5,
    )
    board.add(
        stat(
            "Exporter queue fill",
            "Fullest sending queue (the Jaeger exporter's); a full queue drops spans.",
            [target("max(otelcol_exporter_queue_size / otelcol_exporter_queue_capacity)", instant=True)],
            unit="percentunit",
            decimals=1,
            thresholds=(("green", None), ("yellow", 0.5), ("red", 0.8)),
            minimum=0,
            maximum=1,
        ),
        4,
        5,
    )
    board.add(
        stat(
            "Collector memory (RSS)",
            "Resident memory; the memory limiter refuses data near COLLECTOR_MEMORY_LIMIT_MIB.",
            [target("max(otelcol_process_memory_rss)", instant=True)],
            unit="bytes",
            decimals=0,
        ),
        4,
        5,
    )
    for title, description, kind in (
        ("Spans in", "Spans per second at the OTLP receiver.", "spans"),
        (
            "Metric points in",
            "Metric points per second at the OTLP receiver and the span-metrics connector.",
            "metric_points",
        ),
    ):
        queries = [
            target(total(rate(f"otelcol_receiver_{result}_{kind}")), result)
            for result in ("accepted", "refused", "failed")
        ]
        board.add(timeseries(title, description, queries), 8, 8)
    board.add(
        timeseries(
            "Sent by exporter",
            "Items per second handed on by each exporter.",
            [
                target(total(rate("otelcol_exporter_sent_spans"), "exporter"), "{{exporter}} spans"),
                target(total(rate("otelcol_exporter_sent_metric_points"), "exporter"), "{{exporter}} points"),
            ],
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "Send failures and drops",
            "Items per second an exporter gave up on (after retries) or could not queue. Empty while nothing fails.",
            [
                target(total(rate(f"otelcol_exporter_{failure}_{kind}"), "exporter"), f"{{{{exporter}}}} {legend}")
                for failure, what in (("send_failed", "failed"), ("enqueue_failed", "dropped (queue full)"))
                for kind, legend in (("spans", f"spans {what}"), ("metric_points", f"points {what}"))
            ],
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Exporter queue",
            "Batches waiting in each exporter's sending queue, against its capacity.",
            [
                target("sum by (exporter) (otelcol_exporter_queue_size)", "{{exporter}} size"),
                target("sum by (exporter) (otelcol_exporter_queue_capacity)", "{{exporter}} capacity"),
            ],
        ),
        12,
        8,
    )

    board.row("Span metrics: requests, errors, duration (filter: $service_name)")
    entry = selector(CALLS, SERVICES, ENTRY_SPANS)
    board.add(
        timeseries(
            "Request rate",
            "Entry spans (HTTP requests served, Celery tasks run) per second.",
            [target(total(rate(entry), "service_name"), "{{service_name}}")],
            unit="reqps",
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "Error ratio",
            "Entry spans with error status, of all entry spans.",
            [
                target(
                    share(rate(selector(CALLS, SERVICES, ENTRY_SPANS, ERROR)), rate(entry), "service_name"),
                    "{{service_name}}",
                )
            ],
            unit="percentunit",
            minimum=0,
            maximum=1,
        ),
        8,
        8,
    )
    durations = rate(selector(DURATION_BUCKETS, SERVICES, ENTRY_SPANS))
    board.add(
        timeseries(
            "Duration P50 / P95 / P99",
            "Entry span duration. Exemplars open the trace in Jaeger.",
            [
                target(quantile(q, durations, "service_name"), f"{{{{service_name}}}} p{q * 100:g}", exemplar=True)
                for q in (0.5, 0.95, 0.99)
            ],
            unit="ms",
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "External API spans by outcome",
            "Provider call spans per second, from the traces alone (matches the External APIs dashboard when both "
            "pipelines are healthy).",
            [
                target(
                    total(
                        rate(selector(CALLS, SERVICES, 'external_api_service!=""')),
                        "external_api_service, external_api_outcome",
                    ),
                    "{{external_api_service}} {{external_api_outcome}}",
                )
            ],
            unit="reqps",
            fill=20,
            stacked=True,
        ),
        12,
        8,
    )
    errors = over_range(selector(CALLS, SERVICES, ERROR))
    board.add(
        bargauge(
            "Top span names by errors",
            f"Span names with the most error spans. {OVER_RANGE}",
            [
                target(
                    f"topk(10, {total(errors, 'service_name, span_name')})",
                    "{{service_name}} {{span_name}}",
                    instant=True,
                )
            ],
        ),
        12,
        8,
    )
    return board.model()

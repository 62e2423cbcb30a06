"""Helpers to test code instrumented with otel-monitor: its spans, metric points, OTLP log records and JSON lines.

Import it in your tests (like ``structlog.testing``)::

    from otel_monitor.testing import capture_logs, capture_telemetry

    def test_refused_call_is_counted():
        with capture_telemetry() as captured, capture_logs() as lines:
            make_thumbnail()  # your code: track_external_call(...), a provider called over httpx, a log line
        assert captured.metric_value("external_api.errors", service="stability",
                                     error_code="STABILITY_INVALID_API_KEY") == 1
        assert captured.span("stability text-to-image").attributes["external_api.outcome"] == "error"
        assert lines[-1]["level"] == "error"

What was captured can still be read after the block.

``capture_telemetry()`` sets up the process's telemetry as ``setup_telemetry`` does, with in-memory exporters;
``in_memory_telemetry()`` only makes providers to hand to one component (an ``ExternalCallRecorder``, a service
taking a ``meter_provider``). The monitor service's own fakes (a quota source answering fixed figures) live with
the service, in ``otel_monitor.monitor.quota.testing``: they need the service's dependencies, which this module,
installed with the library alone, must not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_monitor.instrument import telemetry as telemetry_module
from otel_monitor.instrument.provider_http import instrument_http_clients, uninstrument_http_clients
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.telemetry import Telemetry, get_telemetry, setup_telemetry
from otel_monitor.logs.formatter import JsonLineFormatter
from otel_monitor.redaction.exporters import RedactingSpanExporter
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

if TYPE_CHECKING:
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk.metrics.export import MetricsData

__all__ = [
    "CapturedTelemetry",
    "MetricPoint",
    "MetricPoints",
    "capture_logs",
    "capture_telemetry",
    "in_memory_telemetry",
]

# A point's labels as a hashable key: its (name, value) pairs sorted by name.
LabelKey = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class MetricPoint:
    """One data point of one collection. ``value`` is a counter's or gauge's value, a histogram's count;
    ``data`` is the SDK's point (a histogram's sum and buckets)."""

    name: str
    labels: Mapping[str, Any]
    value: float
    data: Any


class MetricPoints:
    """The points of one collection, looked up by instrument name and labels."""

    def __init__(self, points: list[MetricPoint]) -> None:
        self._points = points

    @classmethod
    def from_metrics_data(cls, data: MetricsData | None) -> MetricPoints:
        points = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        value = point.value if hasattr(point, "value") else point.count
                        points.append(MetricPoint(metric.name, dict(point.attributes or {}), value, point))
        return cls(points)

    def __iter__(self) -> Iterator[MetricPoint]:
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)

    def names(self) -> set[str]:
        """The instruments that have at least one point (an observable gauge whose callback observed nothing has
        none)."""
        return {point.name for point in self._points}

    def points(self, name: str) -> dict[LabelKey, float]:
        """{sorted label items: value} of one instrument; ``{}`` if it has no point."""
        return {tuple(sorted(point.labels.items())): point.value for point in self._points if point.name == name}

    def value(self, name: str, /, **labels: Any) -> float | None:
        """The value of the point with exactly these labels (none for an unlabelled instrument); None if absent.
        Labels whose names are not identifiers go in as ``**{"server.address": "..."}``."""
        for point in self._points:
            if point.name == name and point.labels == labels:
                return point.value
        return None

    def values_by(self, name: str, label: str) -> dict[Any, float]:
        """{value of ``label`` (None on a point without it): value} of one instrument."""
        return {point.labels.get(label): point.value for point in self._points if point.name == name}


class CapturedTelemetry:
    """Providers whose spans, metric points and log records stay in memory for the test to read.

    Every metric query (``collect``, ``points``, ``metric_value``) is one collection: observable instruments run
    their callbacks each time, and counters are cumulative since the providers were made. Span and log queries
    flush first, so what was ended or logged before the call is there.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        span_exporter: InMemorySpanExporter,
        metric_reader: InMemoryMetricReader,
        *,
        log_exporter: InMemoryLogRecordExporter | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.span_exporter = span_exporter
        self.metric_reader = metric_reader
        self.log_exporter = log_exporter
        # Set by capture_telemetry: hand it to instrument_fastapi, read its recorder or business metrics.
        self.telemetry = telemetry

    def spans(self, name: str | None = None, /, **attributes: Any) -> list[ReadableSpan]:
        """The ended spans, oldest first; only those called ``name`` and carrying these attribute values, if
        given (dotted attribute names as ``**{"external_api.service": "gemini"}``)."""
        self.tracer_provider.force_flush()
        return [
            span
            for span in self.span_exporter.get_finished_spans()
            if (name is None or span.name == name)
            and all((span.attributes or {}).get(key) == value for key, value in attributes.items())
        ]

    def span(self, name: str, /, **attributes: Any) -> ReadableSpan:
        """The one ended span called ``name`` (with these attribute values); fails the test if there is not
        exactly one."""
        found = self.spans(name, **attributes)
        if len(found) != 1:
            ended = [span.name for span in self.span_exporter.get_finished_spans()]
            raise AssertionError(f"{len(found)} spans {name!r} with {attributes}, expected 1; ended: {ended}")
        return found[0]

    def log_records(self) -> list[LogRecord]:
        """The OTLP log records exported so far (capture_telemetry with ``export_logs`` on), oldest first."""
        if self.log_exporter is None:
            raise RuntimeError("no log records are captured: use capture_telemetry() with export_logs on")
        if self.telemetry is not None:
            self.telemetry.force_flush()  # the bridge's queue, then the batch processor
        return [readable.log_record for readable in self.log_exporter.get_finished_logs()]

    def collect(self) -> MetricPoints:
        """One collection of every instrument."""
        return MetricPoints.from_metrics_data(self.metric_reader.get_metrics_data())

    def points(self, name: str) -> dict[LabelKey, float]:
        """{sorted label items: value} of one instrument, at one collection."""
        return self.collect().points(name)

    def metric_value(self, name: str, /, **labels: Any) -> float | None:
        """The value of the point with exactly these labels at one collection, None if there is none (like
        prometheus_client's ``get_sample_value``)."""
        return self.collect().value(name, **labels)


def in_memory_telemetry(scrubber: SecretScrubber | None = None) -> CapturedTelemetry:
    """A tracer and a meter provider of their own, to hand to one component; nothing global is set.

    Spans are scrubbed by ``scrubber`` (default: a fresh ``SecretScrubber``) before they are kept, as
    ``setup_telemetry``'s are before export, and kept as they end.
    """
    span_exporter, metric_reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(RedactingSpanExporter(span_exporter, scrubber or SecretScrubber()))
    )
    return CapturedTelemetry(
        tracer_provider, MeterProvider(metric_readers=[metric_reader]), span_exporter, metric_reader
    )


def _make_active(telemetry: Telemetry | None) -> None:
    # setup_telemetry shuts down the active telemetry to replace it; a capture only sets it aside until its exit,
    # so it swaps the module's record of the active telemetry directly.
    telemetry_module._active = telemetry


def _http_clients_instrumented() -> bool:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    return bool(HTTPXClientInstrumentor().is_instrumented_by_opentelemetry)


@contextmanager
def capture_telemetry(
    settings: TelemetrySettings | None = None,
    *,
    scrubber: SecretScrubber | None = None,
    instrument_httpx: bool = True,
    configure_logs: bool = False,
) -> Iterator[CapturedTelemetry]:
    """Sets up this process's telemetry as ``setup_telemetry(settings)`` does, its spans, metrics and OTLP log
    records kept in memory, and restores what was there at exit.

    Within the block, ``get_telemetry()``, ``track_external_call``, business metrics and (unless
    ``instrument_httpx=False``) provider calls over httpx, httpx2 and requests record into the capture; an app
    instrumented inside it with ``instrument_fastapi(app, captured.telemetry)`` too. At exit the captured
    telemetry is shut down and the telemetry set up before (if any) is active again, with its HTTP clients
    instrumented again if they were.

    Two things differ from ``setup_telemetry``: the global OpenTelemetry providers are left alone (a process can
    set them only once), so spans of ``trace.get_tracer()`` are not captured; and JSON logging is not configured
    unless ``configure_logs=True`` (it would replace the process's log handlers for good): read the lines with
    ``capture_logs()``. Code that calls ``setup_telemetry`` inside the block replaces the capture: build the app
    under test with ``captured.telemetry`` instead.
    """
    previous = get_telemetry()
    previously_instrumented = _http_clients_instrumented()
    span_exporter, metric_reader = InMemorySpanExporter(), InMemoryMetricReader()
    log_exporter = InMemoryLogRecordExporter()
    _make_active(None)
    try:
        telemetry = setup_telemetry(
            settings,
            span_exporter=span_exporter,
            metric_reader=metric_reader,
            log_exporter=log_exporter,
            scrubber=scrubber or default_scrubber,
            set_global=False,
            configure_logs=configure_logs,
            instrument_httpx=instrument_httpx,
        )
    except BaseException:
        _make_active(previous)
        raise
    try:
        yield CapturedTelemetry(
            telemetry.tracer_provider,
            telemetry.meter_provider,
            span_exporter,
            metric_reader,
            log_exporter=log_exporter if telemetry.logger_provider is not None else None,
            telemetry=telemetry,
        )
    finally:
        telemetry.shutdown()
        if instrument_httpx:
            uninstrument_http_clients()
            if previous is not None and previously_instrumented:
                instrument_http_clients(previous)
        _make_active(previous)


class _JsonLines(logging.Handler):
    """Renders each record as the library's JSON line, kept parsed."""

    def __init__(self, lines: list[dict[str, Any]], level: int | str, scrubber: SecretScrubber) -> None:
        super().__init__(level)
        self.lines = lines
        self.setFormatter(JsonLineFormatter(scrubber=scrubber))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextmanager
def capture_logs(
    level: int | str = logging.DEBUG, *, scrubber: SecretScrubber = default_scrubber
) -> Iterator[list[dict[str, Any]]]:
    """Collects, as dicts, the JSON lines that ``configure_logging`` would write for the records logged in the
    block at ``level`` or above (any logger that propagates to the root logger, ``StructuredLogger`` included).

    Lines are rendered on the logging thread, with the trace ids of the span current there. The root logger's
    level is lowered to ``level`` for the block if it is higher (the other handlers see those records too), and
    restored at exit.
    """
    lines: list[dict[str, Any]] = []
    handler = _JsonLines(lines, level, scrubber)
    root = logging.getLogger()
    root_level = root.level
    root.addHandler(handler)
    if root.getEffectiveLevel() > handler.level:
        root.setLevel(handler.level)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)

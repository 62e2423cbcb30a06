"""The hot path's histogram measurements, queued by the calling thread and recorded into the SDK at collection."""

from __future__ import annotations

import os

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otel_monitor.instrument.external_calls import ExternalCallRecorder
from otel_monitor.instrument.metrics import CollectionTimeRecords
from otel_monitor.instrument.provider_http import ProviderRequests
from otel_monitor.instrument.providers import ProviderRegistry
from otel_monitor.testing import MetricPoints

GEMINI_HOST = "generativelanguage.googleapis.com"
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_ANSWER = b'{"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":30},"modelVersion":"gemini-2.5-flash"}'


def _histogram_points(reader: InMemoryMetricReader) -> dict[str, list[HistogramDataPoint]]:
    """The SDK points of one collection by instrument name (the SDK keeps an exemplar for one collection only)."""
    points: dict[str, list[HistogramDataPoint]] = {}
    for point in MetricPoints.from_metrics_data(reader.get_metrics_data()):
        points.setdefault(point.name, []).append(point.data)
    return points


def _gemini_call(recorder: ExternalCallRecorder) -> None:
    """One Gemini generateContent answered with 12 input and 30 output tokens, as the HTTP wrappers report it."""
    requests = ProviderRequests(recorder, ProviderRegistry())
    call, opens = requests.call_for(GEMINI_HOST, 443, "POST", "", lambda _name: None, GEMINI_PATH)
    assert call is not None and opens
    with call:
        requests.answered(call, 200, GEMINI_ANSWER)


def test_a_call_is_recorded_at_collection_with_its_exemplars_naming_its_trace():
    """Duration and both token counts arrive at the collection after the call, each once, with exemplars of the
    call's trace (recorded in the call's context, not the collector's), in every reader of the provider."""
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    recorder = ExternalCallRecorder(TracerProvider(), MeterProvider(metric_readers=[first, second]))
    tracer = recorder.tracer
    with tracer.start_as_current_span("the call's trace") as span:
        _gemini_call(recorder)
    trace_id = span.get_span_context().trace_id

    collected = _histogram_points(first)
    tokens = {point.attributes["gen_ai.token.type"]: point for point in collected["gen_ai.client.token.usage"]}
    assert {kind: (point.count, point.sum) for kind, point in tokens.items()} == {"input": (1, 12), "output": (1, 30)}
    (duration,) = collected["external_api.call.duration"]
    assert duration.count == 1 and dict(duration.attributes) == {"service": "gemini", "outcome": "success"}
    for point in (*tokens.values(), duration):
        assert [exemplar.trace_id for exemplar in point.exemplars] == [trace_id]
    # the second reader collects the same measurements; later collections count them once (cumulative)
    assert [point.count for point in _histogram_points(second)["external_api.call.duration"]] == [1]
    assert [point.count for point in _histogram_points(first)["external_api.call.duration"]] == [1]


def test_calls_between_collections_all_count():
    reader = InMemoryMetricReader()
    recorder = ExternalCallRecorder(TracerProvider(), MeterProvider(metric_readers=[reader]))
    collected = []
    for calls in (3, 2):
        for _ in range(calls):
            _gemini_call(recorder)
        (duration,) = _histogram_points(reader)["external_api.call.duration"]
        collected.append(duration.count)
    assert collected == [3, 5]  # cumulative: each call counted once, at the collection after it


class _Histogram:
    """Stands in for an SDK histogram: what was recorded, and when (one that refuses a value raises)."""

    def __init__(self, refused: float | None = None) -> None:
        self.recorded: list[float] = []
        self.refused = refused

    def record(self, amount, attributes=None, context=None):
        if amount == self.refused:
            raise ValueError("refused")
        self.recorded.append(amount)


def test_past_the_limit_measurements_are_recorded_at_once():
    """No collection coming (no reader, or one far behind): the queue stays bounded and nothing is lost."""
    histogram = _Histogram()
    records = CollectionTimeRecords(limit=2)
    for amount in (1.0, 2.0, 3.0, 4.0):
        records.record(histogram, amount, {})
    assert histogram.recorded == [3.0, 4.0]  # the queue was full
    assert records.record_queued() == 2
    assert histogram.recorded == [3.0, 4.0, 1.0, 2.0]
    assert records.record_queued() == 0


def test_a_refused_measurement_does_not_cost_the_others_their_collection():
    histogram = _Histogram(refused=2.0)
    records = CollectionTimeRecords()
    for amount in (1.0, 2.0, 3.0):
        records.record(histogram, amount, {})
    assert records.record_queued() == 3
    assert histogram.recorded == [1.0, 3.0]


def test_a_forked_child_does_not_record_its_parents_measurements():
    """The parent records its own queued measurements; a child (a prefork worker) starts with none."""
    histogram = _Histogram()
    records = CollectionTimeRecords()
    records.record(histogram, 1.0, {})
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os._exit(0 if records.record_queued() == 0 and not histogram.recorded else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert records.record_queued() == 1 and histogram.recorded == [1.0]

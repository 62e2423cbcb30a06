"""otel_monitor.testing, the helpers users test their instrumented code with: captured spans, metric points, OTLP
log records and JSON lines, and the state restored after a capture."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import uuid

import httpx
import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from examples.demo_backend.launcher import DEMO_SECRETS
from otel_monitor import StructuredLogger, get_telemetry, track_external_call
from otel_monitor.instrument.metrics import METER_NAME
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.telemetry import Telemetry, setup_telemetry
from otel_monitor.redaction.scrubber import REDACTED, SecretScrubber
from otel_monitor.testing import capture_logs, capture_telemetry, in_memory_telemetry
from tests.support.paths import REPO_ROOT


def _settings(**overrides) -> TelemetrySettings:
    """Settings that reach no collector or Redis, whatever the environment says."""
    return TelemetrySettings(
        **{
            "service_name": "testing-module",
            "redis_url": None,
            "host_metrics": False,
            "otlp_endpoint": "http://127.0.0.1:9",
            **overrides,
        }
    )


def _previous(instrument_httpx: bool = False, **settings) -> tuple[Telemetry, InMemorySpanExporter]:
    """Telemetry set up before a capture (as the app under test would), exporting its spans to memory."""
    spans = InMemorySpanExporter()
    telemetry = setup_telemetry(
        _settings(export_logs=False, **settings),
        span_exporter=spans,
        metric_reader=InMemoryMetricReader(),
        set_global=False,
        configure_logs=False,
        instrument_httpx=instrument_httpx,
    )
    return telemetry, spans


class BrokenScrubber(SecretScrubber):
    def register_from_environment(self) -> None:
        raise RuntimeError("set-up failed")


# -- in_memory_telemetry: providers for one component ------------------------------------------------------------
def test_spans_are_found_by_name_and_attributes():
    """spans() filters by name and attribute values (dotted names unpacked); span() is the one match."""
    captured = in_memory_telemetry()
    tracer = captured.tracer_provider.get_tracer("test")
    for service in ("gemini", "stability", "gemini"):
        with tracer.start_as_current_span("call", attributes={"external_api.service": service}):
            pass
    with tracer.start_as_current_span("other"):
        pass
    assert [s.name for s in captured.spans()] == ["call", "call", "call", "other"]
    assert len(captured.spans("call", **{"external_api.service": "gemini"})) == 2
    assert (
        captured.span("call", **{"external_api.service": "stability"}).attributes["external_api.service"] == "stability"
    )
    assert captured.span("other").name == "other"


@pytest.mark.parametrize("name", ["call", "missing"])
def test_span_fails_unless_exactly_one_matches(name):
    """Two matches or none fail the test with what did end."""
    captured = in_memory_telemetry()
    tracer = captured.tracer_provider.get_tracer("test")
    for _ in range(2):
        with tracer.start_as_current_span("call"):
            pass
    with pytest.raises(AssertionError, match=r"expected 1; ended: \['call', 'call'\]"):
        captured.span(name)


def test_spans_are_scrubbed_as_setup_telemetry_exports_them():
    """Secrets the scrubber knows are gone from the kept spans, as from exported ones."""
    scrubber = SecretScrubber()
    scrubber.register("sk-testing-module-0123456789")
    captured = in_memory_telemetry(scrubber)
    with captured.tracer_provider.get_tracer("test").start_as_current_span("call") as span:
        span.set_attribute("note", "sent sk-testing-module-0123456789")
    assert captured.span("call").attributes["note"] == f"sent {REDACTED}"


def test_metric_points_by_name_and_labels():
    """Counters by their labels, histograms by their count; metric_value needs the exact label set; an unknown
    instrument or label set is None and {}."""
    captured = in_memory_telemetry()
    meter = metrics.get_meter(METER_NAME, meter_provider=captured.meter_provider)
    errors = meter.create_counter("test.errors")
    errors.add(2, {"service": "gemini", "error_code": "GEMINI_QUOTA_EXCEEDED"})
    errors.add(1, {"service": "stability", "error_code": "STABILITY_SERVER_ERROR"})
    duration = meter.create_histogram("test.duration")
    for seconds in (0.1, 0.2, 0.3):
        duration.record(seconds, {"service": "gemini"})
    assert captured.points("test.errors") == {
        (("error_code", "GEMINI_QUOTA_EXCEEDED"), ("service", "gemini")): 2,
        (("error_code", "STABILITY_SERVER_ERROR"), ("service", "stability")): 1,
    }
    assert captured.metric_value("test.errors", service="gemini", error_code="GEMINI_QUOTA_EXCEEDED") == 2
    assert captured.metric_value("test.errors", service="gemini") is None
    assert captured.metric_value("test.duration", service="gemini") == 3
    assert captured.points("test.missing") == {} and captured.metric_value("test.missing") is None
    collection = captured.collect()
    assert collection.names() == {"test.errors", "test.duration"}
    assert collection.values_by("test.errors", "service") == {"gemini": 2, "stability": 1}
    [histogram] = [point for point in collection if point.name == "test.duration"]
    assert histogram.data.sum == pytest.approx(0.6)


def test_each_metric_query_is_one_collection():
    """An observable gauge's callback runs once per query; a gauge that observes nothing has no point."""
    captured = in_memory_telemetry()
    readings = iter([[], [metrics.Observation(0.5)], [metrics.Observation(0.7, {"host": "api-1"})]])
    meter = metrics.get_meter(METER_NAME, meter_provider=captured.meter_provider)
    meter.create_observable_gauge("test.usage", callbacks=[lambda _options: next(readings)])
    assert "test.usage" not in captured.collect().names()
    assert captured.metric_value("test.usage") == 0.5
    assert captured.points("test.usage") == {(("host", "api-1"),): 0.7}


# -- capture_telemetry: the process's telemetry, restored at exit -------------------------------------------------
def test_capture_telemetry_records_the_librarys_telemetry_then_restores_the_previous():
    """Inside, get_telemetry() is the capture's: tracked calls, business metrics and OTLP log records land in
    it; at exit it is shut down and the telemetry set up before is active again, still exporting."""
    previous, previous_spans = _previous()
    logger = logging.getLogger(f"test.testing_module.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    try:
        with capture_telemetry(_settings(), instrument_httpx=False) as captured:
            assert get_telemetry() is captured.telemetry
            with track_external_call("stability", "text-to-image") as call:
                call.mark_partial(3, 5)
            with captured.telemetry.business.track_project("project-1"):
                pass
            logger.warning("inside the capture")
            span = captured.span("stability text-to-image")
            assert span.attributes["external_api.outcome"] == "partial_failure"
            assert captured.metric_value("external_api.items", service="stability", result="failed") == 2
            assert captured.metric_value("video_projects.completed", outcome="success") == 1
            assert "inside the capture" in [record.body for record in captured.log_records()]
        assert get_telemetry() is previous
        captured.telemetry.tracer_provider.get_tracer("test").start_span("after the capture").end()
        assert "after the capture" not in [s.name for s in captured.spans()]  # shut down: exports nothing more
        with previous.tracer_provider.get_tracer("test").start_as_current_span("previous still exports"):
            pass
        previous.force_flush()
        assert [s.name for s in previous_spans.get_finished_spans()] == ["previous still exports"]
    finally:
        previous.shutdown()
    assert get_telemetry() is None


def test_capture_without_log_export_has_no_log_records():
    """With export_logs off there are no OTLP log records to read, and saying so beats an empty list."""
    with capture_telemetry(_settings(export_logs=False), instrument_httpx=False) as captured:
        with pytest.raises(RuntimeError, match="no log records"):
            captured.log_records()


@pytest.mark.parametrize("previously_instrumented", [False, True])
def test_provider_calls_over_httpx_are_captured_and_the_instrumentation_restored(fakes, previously_instrumented):
    """A bare httpx call to a provider is tracked into the capture; at exit the HTTP clients are instrumented for
    the previous telemetry if they were, and not at all otherwise."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    hosts = {service: [fakes.base_url(service).split("://", 1)[1]] for service in SERVICE_KEYS}
    previous, previous_spans = _previous(previously_instrumented, provider_hosts=hosts)
    url = f"{fakes.base_url('gemini')}/v1beta/models/gemini-2.5-flash:generateContent"
    call = {
        "headers": {"x-goog-api-key": DEMO_SECRETS["gemini_api_key"]},
        "json": {"contents": [{"parts": [{"text": "x"}]}]},
    }
    try:
        fakes.set_fault("gemini", mode="ok", latencies=[0])
        with capture_telemetry(_settings(export_logs=False, provider_hosts=hosts)) as captured:
            httpx.post(url, **call).raise_for_status()
            assert captured.span("POST").attributes["external_api.service"] == "gemini"
            assert captured.metric_value("external_api.call.duration", service="gemini", outcome="success") == 1
        assert HTTPXClientInstrumentor().is_instrumented_by_opentelemetry is previously_instrumented
        httpx.post(url, **call).raise_for_status()
        previous.force_flush()
        tracked = [s for s in previous_spans.get_finished_spans() if s.name == "POST"]
        assert len(tracked) == (1 if previously_instrumented else 0)
    finally:
        previous.shutdown()
        from otel_monitor.instrument.provider_http import uninstrument_http_clients

        uninstrument_http_clients()


def test_a_capture_that_fails_to_start_leaves_the_previous_active():
    """Settings that fail set-up raise out of capture_telemetry, and the telemetry set up before stays."""
    previous, _spans = _previous()
    try:
        with pytest.raises(RuntimeError, match="set-up failed"):
            with capture_telemetry(_settings(), scrubber=BrokenScrubber(), instrument_httpx=False):
                pass
        assert get_telemetry() is previous
    finally:
        previous.shutdown()


# -- capture_logs: the JSON lines ---------------------------------------------------------------------------------
def test_capture_logs_gives_the_json_lines_as_dicts():
    """Each record logged in the block is one dict shaped as configure_logging's line: trace ids of the span it
    was logged in, extra fields, the exception; secrets scrubbed."""
    scrubber = SecretScrubber()
    scrubber.register("pw-testing-module-0123456789")
    logger = StructuredLogger(f"test.testing_module.{uuid.uuid4().hex}")
    tracer = in_memory_telemetry().tracer_provider.get_tracer("test")
    with capture_logs(scrubber=scrubber) as lines:
        with tracer.start_as_current_span("request") as span:
            logger.info("Quota warning", extra={"service": "gemini", "used": 85})
        try:
            raise RuntimeError("refused with pw-testing-module-0123456789")
        except RuntimeError:
            logger.exception("Generation failed")
    first, second = lines
    context = span.get_span_context()
    assert (first["trace_id"], first["span_id"]) == (format_trace_id(context.trace_id), format_span_id(context.span_id))
    assert (first["level"], first["message"], first["service"], first["used"]) == (
        "info",
        "Quota warning",
        "gemini",
        85,
    )
    assert list(first)[:6] == ["trace_id", "span_id", "timestamp", "level", "message", "logger"]
    assert (second["level"], second["trace_id"], second["exception"]["type"]) == ("error", None, "RuntimeError")
    assert second["exception"]["message"] == f"refused with {REDACTED}"


def test_capture_logs_level_and_root_logger_restored():
    """Records below the level are not kept; the root logger's level is lowered for the block only, and its
    handlers are as before after it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logger = logging.getLogger(f"test.testing_module.{uuid.uuid4().hex}")
    root.setLevel(logging.WARNING)
    try:
        with capture_logs("INFO") as lines:
            logger.debug("not kept")
            logger.info("kept")
        logger.warning("after the block")
        assert [line["message"] for line in lines] == ["kept"]
        assert (root.level, root.handlers) == (logging.WARNING, handlers)
    finally:
        root.setLevel(level)


def test_readme_example_runs():
    """The example of README's "Testing your instrumented code" section passes as written."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Testing your instrumented code", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    [test] = [value for name, value in namespace.items() if name.startswith("test_")]
    test()


# -- packaging ----------------------------------------------------------------------------------------------------
def test_importable_without_the_services_dependencies():
    """otel_monitor.testing imports where only the library is installed: none of the service's dependencies is
    needed (they are hidden from the import system here)."""
    script = textwrap.dedent("""
        import sys

        SERVICE_ONLY = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "sentry_sdk", "celery")

        class Hidden:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in SERVICE_ONLY:
                    raise ModuleNotFoundError(name)
                return None

        sys.meta_path.insert(0, Hidden())
        import otel_monitor.testing
        with otel_monitor.testing.capture_logs() as lines:
            __import__("logging").getLogger("x").warning("imported")
        assert lines[0]["message"] == "imported"
    """)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr

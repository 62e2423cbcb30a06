"""One call sets up tracing, metrics and logs of a backend process and instruments its provider calls."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.util.types import AnyValue, AttributeValue

from otel_monitor.instrument.business_metrics import ActiveUsers, BusinessMetrics
from otel_monitor.instrument.costs import PriceTable, ProjectCosts
from otel_monitor.instrument.external_calls import ExternalCall, ExternalCallRecorder
from otel_monitor.instrument.failure_streaks import failure_streaks_from_url
from otel_monitor.instrument.host_metrics import export_host_metrics
from otel_monitor.instrument.metrics import METER_NAME, DroppedSignal, DropReason, observe_dropped_telemetry
from otel_monitor.instrument.providers import ProviderRegistry
from otel_monitor.instrument.redis_client import telemetry_redis
from otel_monitor.instrument.redis_writer import RedisWriter, lost_writes
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.spend_ledger import SpendLedger
from otel_monitor.instrument.usage_counter import UsageCounter
from otel_monitor.logs.background import BackgroundLogHandler, dropped_log_lines
from otel_monitor.logs.configure import configure_logging
from otel_monitor.logs.records import record_exception, record_span_context
from otel_monitor.redaction.exporters import RedactingLogRecordProcessor, RedactingSpanExporter
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["Telemetry", "setup_telemetry", "get_telemetry", "track_external_call"]

_log = logging.getLogger(__name__)
_active: Telemetry | None = None
# Not under configure_logging's "otel_monitor." prefix: configuring the JSON logging again (Celery's
# setup_logging) must not remove the OTLP bridge.
_OTLP_BRIDGE_NAME = "otel-monitor-otlp-bridge"


@dataclass
class Telemetry:
    """The providers and recorders of this process; ``shutdown()`` flushes them within their timeouts."""

    settings: TelemetrySettings
    resource: Resource
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider | None
    registry: ProviderRegistry
    recorder: ExternalCallRecorder
    business: BusinessMetrics
    scrubber: SecretScrubber
    _log_handlers: list[logging.Handler] = field(default_factory=list)

    def force_flush(self, timeout_millis: int = 5000) -> None:
        for handler in self._log_handlers:
            if isinstance(handler, BackgroundLogHandler):  # queued records reach the logger provider first
                handler.flush(timeout_millis / 1000)
        self.tracer_provider.force_flush(timeout_millis)
        self.meter_provider.force_flush(timeout_millis)
        if self.logger_provider is not None:
            self.logger_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flushes and stops everything, each step bounded and guarded: a shutdown that fails midway would lose
        the spans still queued."""
        global _active
        if self.recorder.usage is not None:
            try:
                self.recorder.usage.flush(timeout=self.settings.export_timeout_seconds)
            except Exception:
                _log.debug("usage flush failed", exc_info=True)
        root = logging.getLogger()
        for handler in self._log_handlers:
            root.removeHandler(handler)
            try:
                handler.close()  # drains the background log writer
            except Exception:
                pass
        self._log_handlers = []
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is None:
                continue
            try:
                provider.shutdown()
            except Exception:  # a collector that is away must not fail the host's shutdown
                _log.debug("telemetry shutdown failed", exc_info=True)
        if _active is self:
            _active = None


class _OtlpLoggingHandler(LoggingHandler):
    """The SDK's bridge from stdlib logging to OTLP, run by a BackgroundLogHandler's writer thread.

    Records carry the span context and exception captured where they were logged; the private attributes our
    JSON logging puts on records (trace context, rendered line) are not telemetry and do not encode.
    """

    def emit(self, record: logging.LogRecord) -> None:
        # The SDK reads the current context; on the writer thread that is the span the record was logged in.
        # Nothing may escape: an exception here would end the writer thread, and the bridge with it.
        try:
            span = trace.NonRecordingSpan(record_span_context(record))
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                super().emit(record)
            finally:
                otel_context.detach(token)
        except Exception:
            self.handleError(record)

    def _get_attributes(self, record: logging.LogRecord) -> tuple[dict[str, AnyValue], str | None]:
        attributes, event_name = super()._get_attributes(record)
        attributes = {k: v for k, v in attributes.items() if not k.startswith("_")}
        exception = record_exception(record)
        if exception is not None:  # spelled as on the JSON line and on spans
            attributes[EXCEPTION_TYPE] = exception["type"]
            attributes[EXCEPTION_MESSAGE] = exception["message"]
            attributes[EXCEPTION_STACKTRACE] = exception["stacktrace"]
        return attributes, event_name


def _otlp_log_bridge(logger_provider: LoggerProvider) -> BackgroundLogHandler:
    """INFO+ records to OTLP; the caller only queues them, so a slow or failing log path costs it nothing more."""
    bridge = BackgroundLogHandler([_OtlpLoggingHandler(level=logging.INFO, logger_provider=logger_provider)])
    bridge.setLevel(logging.INFO)
    bridge.set_name(_OTLP_BRIDGE_NAME)
    return bridge


def _dropped_telemetry() -> list[tuple[str, str, int]]:
    writes = lost_writes()
    return [
        (DroppedSignal.LOG_LINE, DropReason.QUEUE_FULL, dropped_log_lines()),
        (DroppedSignal.REDIS_WRITE, DropReason.QUEUE_FULL, writes.dropped),
        (DroppedSignal.REDIS_WRITE, DropReason.WRITE_FAILED, writes.failed),
    ]


def _redis_client(url: str | None) -> Redis | None:
    return telemetry_redis(url) if url else None


def setup_telemetry(
    settings: TelemetrySettings | None = None,
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
    log_exporter: LogRecordExporter | None = None,
    scrubber: SecretScrubber = default_scrubber,
    set_global: bool = True,
    configure_logs: bool = True,
    instrument_httpx: bool = True,
) -> Telemetry:
    """Sets up tracer, meter and logger providers exporting OTLP/HTTP to the collector, JSON logs to
    ``logs/app.log`` and the console, and instruments httpx, httpx2 and requests (all requests, plus provider
    spans and metrics; ``instrument_httpx=False`` leaves every HTTP client alone).

    Exporters can be injected (tests; log records are exported with an injected span exporter only if a log
    exporter is injected too); every span and log record is scrubbed of secrets before export. What the process
    drops rather than block the host (log lines, Redis writes) is exported as ``otel_monitor.telemetry.dropped``.
    """
    global _active
    if _active is not None:  # set up again (an app factory called twice, a reload): replace, do not stack
        _active.shutdown()
    settings = settings or TelemetrySettings()
    # New HTTP semantic conventions: seconds, and server.address on the client duration histogram.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    scrubber.register_from_environment()
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.version": settings.service_version,
            "deployment.environment": settings.environment,
            "deployment.environment.name": settings.environment,
        }
    )
    base = settings.otlp_endpoint.rstrip("/")
    timeout = settings.export_timeout_seconds

    reader = metric_reader or PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=timeout),
        export_interval_millis=settings.metric_export_interval_seconds * 1000,
        export_timeout_millis=timeout * 1000,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    observe_dropped_telemetry(meter_provider.get_meter(METER_NAME), _dropped_telemetry)
    export_host_metrics(settings, meter_provider)

    tracer_provider = TracerProvider(resource=resource)
    exporter = span_exporter or OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=timeout)
    # The batch processors count their queue drops only in the SDK's own metrics (off unless
    # OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true); given this provider, those leave with ours.
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            RedactingSpanExporter(exporter, scrubber),
            max_queue_size=settings.span_queue_size,
            schedule_delay_millis=settings.span_schedule_delay_seconds * 1000,
            export_timeout_millis=timeout * 1000,
            meter_provider=meter_provider,
        )
    )

    logger_provider = None
    handlers: list[logging.Handler] = []
    if configure_logs:
        handlers.extend(
            configure_logging(
                log_dir=settings.log_dir,
                level=settings.log_level,
                console=settings.console_logs,
                scrubber=scrubber,
                background=True,
            )
        )
    if settings.export_logs and (span_exporter is None or log_exporter is not None):
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(RedactingLogRecordProcessor(scrubber))
        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                log_exporter or OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=timeout),
                export_timeout_millis=timeout * 1000,
                meter_provider=meter_provider,
            )
        )
        bridge = _otlp_log_bridge(logger_provider)
        logging.getLogger().addHandler(bridge)
        handlers.append(bridge)

    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        if logger_provider is not None:
            set_logger_provider(logger_provider)

    registry = ProviderRegistry.with_hosts(settings.provider_hosts)
    redis_client = _redis_client(settings.redis_url)
    usage = UsageCounter(redis_client, costs=settings.quota_unit_costs) if redis_client is not None else None
    # one background writer for the sums every process adds to in Redis
    writer = RedisWriter(redis_client) if redis_client is not None else None
    spend = SpendLedger(redis_client, writer=writer) if redis_client is not None else None
    project_costs = ProjectCosts(
        redis_client, writer=writer
    )  # summed over every process in Redis; without it, this process's
    recorder = ExternalCallRecorder(
        tracer_provider,
        meter_provider,
        failure_streaks_from_url(settings.redis_url),
        usage=usage,
        prices=PriceTable(settings.prices),
        project_costs=project_costs,
        spend=spend,
    )
    # The values these counters share through Redis (streaks, active users) are exported by the monitor.
    business = BusinessMetrics(meter_provider, ActiveUsers(redis_client), project_costs=project_costs)
    # The counters the alert rules read exist from the start at 0, so a first failure is an increase from 0.
    try:
        recorder.instruments.start_at_zero(provider.key for provider in registry)
        business.start_at_zero()
    except Exception:  # observability never raises into the host
        _log.debug("could not start the counters at zero", exc_info=True)
    telemetry = Telemetry(
        settings,
        resource,
        tracer_provider,
        meter_provider,
        logger_provider,
        registry,
        recorder,
        business,
        scrubber,
        handlers,
    )
    if instrument_httpx:
        from otel_monitor.instrument.provider_http import instrument_http_clients

        instrument_http_clients(telemetry)
    _active = telemetry
    return telemetry


def get_telemetry() -> Telemetry | None:
    """The telemetry set up in this process, if any."""
    return _active


_fallback_recorder: ExternalCallRecorder | None = None


def track_external_call(service: str, operation: str | None = None, **attributes: AttributeValue) -> ExternalCall:
    """Tracks one logical provider call (``with``, ``async with`` or decorator) with this process's telemetry.

    For clients not instrumented (google-api-python-client over httplib2) and to group retries and
    partial failures into one call: ``with track_external_call("youtube", "videos.insert") as call: ...``.
    """
    global _fallback_recorder
    if _active is not None:
        return _active.recorder.track(service, operation, **attributes)
    if _fallback_recorder is None:  # before set-up: the global providers (no-op until one is set)
        _fallback_recorder = ExternalCallRecorder()
    return _fallback_recorder.track(service, operation, **attributes)

"""Scrubs spans and log records on their way out, the one chokepoint every exported signal passes."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping, Sequence
from typing import cast

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.util.types import AnyValue

from otel_monitor.redaction.scrubber import SecretScrubber

__all__ = ["RedactingSpanExporter", "RedactingLogRecordProcessor"]

_log = logging.getLogger(__name__)


class RedactingSpanExporter(SpanExporter):
    """Wraps a span exporter; attributes, event attributes and status descriptions are scrubbed first."""

    def __init__(self, inner: SpanExporter, scrubber: SecretScrubber) -> None:
        self._inner = inner
        self._scrubber = scrubber

    def _scrub(self, span: ReadableSpan) -> ReadableSpan:
        scrub = self._scrubber
        status = span.status
        if status.description:
            status = Status(status.status_code, scrub.scrub_text(status.description))
        return ReadableSpan(
            name=scrub.scrub_text(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=scrub.scrub_mapping(span.attributes),
            events=[Event(e.name, scrub.scrub_mapping(e.attributes), e.timestamp) for e in span.events],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            scrubbed = [self._scrub(span) for span in spans]
        except Exception:  # never export unscrubbed data; drop the batch instead
            _log.exception("could not scrub spans; batch dropped")
            return SpanExportResult.FAILURE
        return self._inner.export(scrubbed)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class RedactingLogRecordProcessor(LogRecordProcessor):
    """Scrubs a log record's body and attributes in place; install before the exporting processor."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        self._scrubber = scrubber

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        try:
            record.body = self._scrubber.scrub_value(record.body)
            if record.attributes:
                # In place: the SDK's bounded attributes stay the record's, with their limits.
                attributes = cast(MutableMapping[str, AnyValue], record.attributes)
                for key, value in self._scrubber.scrub_mapping(dict(attributes)).items():
                    attributes[key] = value
        except Exception:
            record.body = "log record dropped: could not scrub it"
            record.attributes = {}

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

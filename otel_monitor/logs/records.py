"""What our logging attaches to a stdlib LogRecord, and how the JSON line and the OTLP bridge read it back."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext

__all__ = [
    "EXCEPTION_ATTR",
    "RECORD_ATTRS",
    "RENDERED_ATTR",
    "RESERVED_FIELDS_ATTR",
    "TRACE_CONTEXT_ATTR",
    "exception_fields",
    "exception_type_name",
    "record_exception",
    "record_message",
    "record_span_context",
    "safe_str",
]

# Fields whose names LogRecord reserves (`filename`, `module`, `name`, ...) travel in this one attribute instead,
# because stdlib logging raises KeyError when `extra` would overwrite a record attribute.
RESERVED_FIELDS_ATTR = "_structured_fields"
# Set on a record where it was logged, when lines are written by a background thread (see BackgroundLogHandler).
TRACE_CONTEXT_ATTR = "_otel_monitor_trace_context"
# The rendered line, so the console and file handlers format a record once between them.
RENDERED_ATTR = "_otel_monitor_line"
# The exception of a queued record, rendered where it was logged (its traceback must not outlive the call).
EXCEPTION_ATTR = "_otel_monitor_exception"
# Attributes that are not fields of the line: those of every LogRecord, those formatters add, ours, and the two
# structlog's `ProcessorFormatter.wrap_for_formatter` marks its own records with.
RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "_logger",
    "_name",
    RESERVED_FIELDS_ATTR,
    TRACE_CONTEXT_ATTR,
    RENDERED_ATTR,
    EXCEPTION_ATTR,
}


def safe_str(value: object) -> str:
    """``str(value)``, or a placeholder naming its type when its ``__str__`` raises."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"


def record_message(record: logging.LogRecord) -> str:
    """The record's message with its `%` arguments; arguments that do not fit are appended rather than lost."""
    try:
        return record.getMessage()
    except Exception:
        return f"{safe_str(record.msg)} {safe_str(record.args)}"


def exception_type_name(exc_type: type[BaseException]) -> str:
    """The exception's type as the OpenTelemetry SDK records `exception.type` on spans, so logs and traces match."""
    module = getattr(exc_type, "__module__", None)
    qualname = getattr(exc_type, "__qualname__", exc_type.__name__)
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


def exception_fields(exc_info: tuple[Any, Any, Any]) -> dict[str, str]:
    """{type, message, stacktrace} of an ``exc_info`` triple whose exception is set."""
    exc_type, exc, tb = exc_info
    return {
        "type": exception_type_name(exc_type),
        "message": safe_str(exc),
        "stacktrace": "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n"),
    }


def record_span_context(record: logging.LogRecord | None) -> SpanContext:
    """The span context a record was logged in: captured where it was queued for a background writer, else the
    current one (invalid outside a span)."""
    context = getattr(record, TRACE_CONTEXT_ATTR, None) if record is not None else None
    return context if context is not None else trace.get_current_span().get_span_context()


def record_exception(record: logging.LogRecord) -> dict[str, str] | None:
    """{type, message, stacktrace} of the exception a record carries (rendered where it was queued), else None."""
    prepared = getattr(record, EXCEPTION_ATTR, None)
    if prepared is not None:
        return dict(prepared)
    if record.exc_info and record.exc_info[1] is not None:
        return exception_fields(record.exc_info)
    return None

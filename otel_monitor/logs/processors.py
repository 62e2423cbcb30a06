"""The processors behind every JSON line, in structlog's signature: fields, trace ids, time, redaction, rendering."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import format_span_id, format_trace_id
from structlog.stdlib import ProcessorFormatter, add_log_level, add_logger_name
from structlog.typing import EventDict, Processor, WrappedLogger

from otel_monitor._utc_time import epoch_iso_utc
from otel_monitor.logs.records import (
    EXCEPTION_ATTR,
    RECORD_ATTRS,
    RESERVED_FIELDS_ATTR,
    exception_fields,
    record_span_context,
    safe_str,
)
from otel_monitor.redaction.scrubber import REDACTED, SecretScrubber, default_scrubber, is_sensitive_key

__all__ = [
    "TOP_LEVEL_KEYS",
    "format_message",
    "add_exception_info",
    "add_extra_fields",
    "add_trace_ids",
    "add_timestamp",
    "make_json_safe",
    "redact_credential_fields",
    "JSONRenderer",
    "SecretRedactor",
    "default_processors",
]

# Rendered first, in this order, on every line; missing ones are rendered as null.
TOP_LEVEL_KEYS = ("trace_id", "span_id", "timestamp", "level", "message", "logger")
# Where ProcessorFormatter puts the LogRecord being rendered (a copy: processors may not change the caller's).
RECORD_KEY = "_record"
_MAX_DEPTH = 16


def format_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replaces ProcessorFormatter's `event` and `positional_args` with `message`, the text stdlib's
    `LogRecord.getMessage` gives; `%` arguments that do not fit are appended instead of raising."""
    message = event_dict.pop("event")
    args = event_dict.pop("positional_args", None)
    if args:
        try:
            message = message % args
        except Exception:
            message = f"{message} {safe_str(args)}"
    event_dict["message"] = message
    return event_dict


def add_exception_info(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replaces ProcessorFormatter's `exc_info` with `exception` {type, message, stacktrace}, and `stack_info` with
    `stack`. The exception of a record queued for a background writer was rendered where it was logged."""
    exc_info = event_dict.pop("exc_info", None)
    stack = event_dict.pop("stack_info", None)
    prepared = getattr(event_dict.get(RECORD_KEY), EXCEPTION_ATTR, None)
    if prepared is not None:
        event_dict["exception"] = dict(prepared)
    else:
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if isinstance(exc_info, tuple) and exc_info[1] is not None:
            event_dict["exception"] = exception_fields(exc_info)
    if stack:
        event_dict["stack"] = stack
    return event_dict


def add_extra_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Puts the record's fields (its `extra` attributes, and those named like LogRecord's own) ahead of the event's
    keys, which win: the fields' names are the host's, so none of them may hide the message or the exception."""
    record = event_dict[RECORD_KEY]
    fields = {key: value for key, value in record.__dict__.items() if key not in RECORD_ATTRS}
    fields.update(getattr(record, RESERVED_FIELDS_ATTR, None) or {})
    fields.update(event_dict)
    return fields


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Adds the span's `trace_id` (32 hex) and `span_id` (16 hex), as Jaeger shows them; null outside a span.

    The span is the one current where the record was logged, also when a background writer renders it.
    """
    context = record_span_context(event_dict.get(RECORD_KEY))
    if context.is_valid:
        event_dict["trace_id"] = format_trace_id(context.trace_id)
        event_dict["span_id"] = format_span_id(context.span_id)
    else:
        event_dict["trace_id"] = None
        event_dict["span_id"] = None
    return event_dict


def add_timestamp(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Adds `timestamp`: when the record was created (not rendered), UTC ISO-8601 with milliseconds and `Z`."""
    record = event_dict.get(RECORD_KEY)
    created = record.created if record is not None else time.time()
    event_dict["timestamp"] = epoch_iso_utc(created)
    return event_dict


def _json_safe(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; jq and strict parsers reject them.
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        # Also ends self-referencing containers: their str() marks the cycle as `...`.
        return safe_str(value)
    if isinstance(value, Mapping):
        return {_json_key(key): _json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(item, depth + 1) for item in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return safe_str(value)


def _json_key(key: object) -> str:
    return key if isinstance(key, str) else safe_str(key)


def make_json_safe(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Makes every key a string and every value a JSON type; unknown objects and NaN/inf become their `str()`."""
    return {_json_key(key): _json_safe(value, 0) for key, value in event_dict.items()}


def redact_credential_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replaces the values of fields named like credential headers (``Authorization``, ``x-goog-api-key``...),
    at any depth, with REDACTED; the text of every other value is scrubbed by `SecretRedactor` once rendered.

    Runs after `make_json_safe`, so the only containers left are dicts and lists.
    """

    def redact(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if v is not None and is_sensitive_key(k) else redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(item) for item in value]
        return value

    for key, value in event_dict.items():
        if value is not None and is_sensitive_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, (dict, list)):
            event_dict[key] = redact(value)
    return event_dict


class JSONRenderer:
    """Renders the event as one compact ASCII JSON line: `key_order` keys first (null when absent), then the rest."""

    def __init__(self, key_order: Sequence[str] = TOP_LEVEL_KEYS) -> None:
        self._key_order = tuple(key_order)
        # ASCII-only output cannot fail on any stream encoding; allow_nan=False keeps every line valid JSON.
        self._encoder = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=safe_str)

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> str:
        ordered = {key: event_dict.get(key) for key in self._key_order}
        ordered.update(event_dict)  # keys already placed keep their place
        return self._encoder.encode(ordered)


class SecretRedactor:
    """Scrubs the rendered line: registered secret values and credential shapes, keys and values alike.

    Runs last, on the JSON text, so everything on the line (the `str()` of unknown objects, exception text,
    keys) passes one scrub instead of one per field.
    """

    def __init__(self, scrubber: SecretScrubber = default_scrubber) -> None:
        self._scrubber = scrubber

    def __call__(self, _: WrappedLogger, __: str, line: Any) -> str:
        # `line` is the renderer's string: in a chain, what a processor gets is what the one before returned.
        return self._scrubber.scrub_text(line)


def default_processors(scrubber: SecretScrubber = default_scrubber) -> list[Processor]:
    """The chain behind every line: message, exception, fields, trace ids, time, level, logger, JSON types,
    redaction, rendering, scrub. The processors up to the logger read the record; its meta keys are dropped after."""
    return [
        format_message,
        add_exception_info,  # before the fields, so a field named `exc_info` or `stack_info` stays a field
        add_extra_fields,
        add_trace_ids,
        add_timestamp,
        add_log_level,
        add_logger_name,
        ProcessorFormatter.remove_processors_meta,
        make_json_safe,
        redact_credential_fields,
        JSONRenderer(),
        SecretRedactor(scrubber),
    ]

"""Structured JSON logging: each stdlib log record becomes one scrubbed JSON line carrying the current trace ids."""

from __future__ import annotations

import datetime as dt
import functools
import atexit
import copy
import inspect
import json
import logging
import logging.handlers
import math
import os
import queue
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext, format_span_id, format_trace_id

from otel_monitor.logs.files import DailyRotatingFileHandler
from otel_monitor.instrument.loss_counter import LossCounter
from otel_monitor._utc_time import epoch_iso_utc
from otel_monitor.redaction.scrubber import REDACTED, SecretScrubber, default_scrubber, is_sensitive_key

__all__ = [
    "BackgroundLogHandler",
    "EventDict",
    "Processor",
    "RECORD_KEY",
    "TOP_LEVEL_KEYS",
    "dropped_log_lines",
    "record_exception",
    "record_span_context",
    "add_trace_context",
    "add_timestamp",
    "add_log_level",
    "add_logger_name",
    "add_exception_info",
    "make_json_safe",
    "SecretRedactor",
    "redact_credential_fields",
    "JSONRenderer",
    "default_processors",
    "JsonLineFormatter",
    "StructuredLogger",
    "log_operation",
    "configure_logging",
]

EventDict = dict[str, Any]
# A processor takes the event dict and returns the next one; the last processor returns the rendered line.
Processor = Callable[[EventDict], Any]

# The LogRecord being rendered travels in the event dict under this key (structlog's ProcessorFormatter does the same).
RECORD_KEY = "_record"
# Rendered first, in this order, on every line; missing ones are rendered as null.
TOP_LEVEL_KEYS = ("trace_id", "span_id", "timestamp", "level", "message", "logger")

_HANDLER_NAME_PREFIX = "otel_monitor."
# Fields whose names LogRecord reserves (`filename`, `module`, `name`, ...) travel in this one attribute instead,
# because stdlib logging raises KeyError when `extra` would overwrite a record attribute.
_RESERVED_FIELDS_ATTR = "_structured_fields"
# Set on a record where it was logged, when lines are written by a background thread (see configure_logging).
_TRACE_CONTEXT_ATTR = "_otel_monitor_trace_context"
# The rendered line, so the console and file handlers format a record once between them.
_RENDERED_ATTR = "_otel_monitor_line"
# The exception of a queued record, rendered where it was logged (its traceback must not outlive the call).
_EXCEPTION_ATTR = "_otel_monitor_exception"
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    _RESERVED_FIELDS_ATTR,
    _TRACE_CONTEXT_ATTR,
    _RENDERED_ATTR,
    _EXCEPTION_ATTR,
}
_MAX_DEPTH = 16


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"


def _exception_type_name(exc_type: type[BaseException]) -> str:
    # Same form as the `exception.type` the OpenTelemetry SDK records on spans, so logs and traces match.
    module = getattr(exc_type, "__module__", None)
    qualname = getattr(exc_type, "__qualname__", exc_type.__name__)
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


def record_span_context(record: logging.LogRecord | None) -> SpanContext:
    """The span context a record was logged in: captured where it was queued for a background writer, else the
    current one (invalid outside a span)."""
    context = getattr(record, _TRACE_CONTEXT_ATTR, None) if record is not None else None
    return context if context is not None else trace.get_current_span().get_span_context()


def record_exception(record: logging.LogRecord) -> dict[str, str] | None:
    """{type, message, stacktrace} of the exception a record carries (rendered where it was queued), else None."""
    prepared = getattr(record, _EXCEPTION_ATTR, None)
    if prepared is not None:
        return dict(prepared)
    if record.exc_info and record.exc_info[1] is not None:
        return _exception_fields(record.exc_info)
    return None


def add_trace_context(event_dict: EventDict) -> EventDict:
    """Adds the current span's `trace_id` (32 hex) and `span_id` (16 hex), as Jaeger shows them; null outside a span.

    When the record was queued for a background writer, the ids captured where it was logged are used.
    """
    context = record_span_context(event_dict.get(RECORD_KEY))
    if context.is_valid:
        event_dict["trace_id"] = format_trace_id(context.trace_id)
        event_dict["span_id"] = format_span_id(context.span_id)
    else:
        event_dict["trace_id"] = None
        event_dict["span_id"] = None
    return event_dict


def add_timestamp(event_dict: EventDict) -> EventDict:
    """Adds `timestamp`: when the record was created, UTC ISO-8601 with milliseconds and `Z`."""
    record = event_dict.get(RECORD_KEY)
    created = record.created if record is not None else time.time()
    event_dict["timestamp"] = epoch_iso_utc(created)
    return event_dict


def add_log_level(event_dict: EventDict) -> EventDict:
    """Adds `level`: the record's level name in lower case (`error`, `warning`, ...)."""
    record = event_dict.get(RECORD_KEY)
    if record is not None:
        event_dict["level"] = record.levelname.lower()
    return event_dict


def add_logger_name(event_dict: EventDict) -> EventDict:
    """Adds `logger`: the name of the logger that made the record."""
    record = event_dict.get(RECORD_KEY)
    if record is not None:
        event_dict["logger"] = record.name
    return event_dict


def _exception_fields(exc_info) -> dict[str, str]:
    exc_type, exc, tb = exc_info
    return {
        "type": _exception_type_name(exc_type),
        "message": _safe_str(exc),
        "stacktrace": "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n"),
    }


def add_exception_info(event_dict: EventDict) -> EventDict:
    """Adds `exception` {type, message, stacktrace} when the record carries exc_info, and `stack` for stack_info."""
    record = event_dict.get(RECORD_KEY)
    if record is None:
        return event_dict
    exception = record_exception(record)
    if exception is not None:
        event_dict["exception"] = exception
    if record.stack_info:
        event_dict["stack"] = record.stack_info
    return event_dict


def _json_safe(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; jq and strict parsers reject them.
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        # Also ends self-referencing containers: their str() marks the cycle as `...`.
        return _safe_str(value)
    if isinstance(value, Mapping):
        return {_json_key(key): _json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(item, depth + 1) for item in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return _safe_str(value)


def _json_key(key: object) -> str:
    return key if isinstance(key, str) else _safe_str(key)


def make_json_safe(event_dict: EventDict) -> EventDict:
    """Makes every key a string and every value a JSON type; unknown objects and NaN/inf become their `str()`."""
    safe = {_json_key(key): _json_safe(value, 0) for key, value in event_dict.items() if key != RECORD_KEY}
    if RECORD_KEY in event_dict:
        safe[RECORD_KEY] = event_dict[RECORD_KEY]
    return safe


def redact_credential_fields(event_dict: EventDict) -> EventDict:
    """Replaces the values of fields named like credential headers (``Authorization``, ``x-goog-api-key``...),
    at any depth, with REDACTED; the text of every other value is scrubbed by `SecretRedactor` once rendered."""

    def redact(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: REDACTED if v is not None and is_sensitive_key(k) else redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(item) for item in value]
        return value

    for key, value in event_dict.items():
        if key == RECORD_KEY:
            continue
        if value is not None and is_sensitive_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, (Mapping, list)):
            event_dict[key] = redact(value)
    return event_dict


class SecretRedactor:
    """Scrubs the rendered line: registered secret values and credential shapes, keys and values alike.

    Runs last, on the JSON text, so everything on the line (the `str()` of unknown objects, exception text,
    keys) passes one scrub instead of one per field.
    """

    def __init__(self, scrubber: SecretScrubber = default_scrubber) -> None:
        self._scrubber = scrubber

    def __call__(self, line: str) -> str:
        return self._scrubber.scrub_text(line)


class JSONRenderer:
    """Renders the event as one compact ASCII JSON line: `key_order` keys first (null when absent), then the rest."""

    def __init__(self, key_order: Sequence[str] = TOP_LEVEL_KEYS) -> None:
        self._key_order = tuple(key_order)
        # ASCII-only output cannot fail on any stream encoding; allow_nan=False keeps every line valid JSON.
        self._encoder = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_safe_str)

    def __call__(self, event_dict: EventDict) -> str:
        ordered = {key: event_dict.get(key) for key in self._key_order}
        ordered.update((key, value) for key, value in event_dict.items() if key not in ordered and key != RECORD_KEY)
        return self._encoder.encode(ordered)


def default_processors(scrubber: SecretScrubber = default_scrubber) -> list[Processor]:
    """The chain behind every line: context, time, level, logger, exception, JSON types, redaction, rendering."""
    return [
        add_trace_context,
        add_timestamp,
        add_log_level,
        add_logger_name,
        add_exception_info,
        make_json_safe,
        redact_credential_fields,
        JSONRenderer(),
        SecretRedactor(scrubber),
    ]


def _record_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        # `%` arguments that do not fit the message: keep both rather than lose the line.
        return f"{_safe_str(record.msg)} {_safe_str(record.args)}"


class JsonLineFormatter(logging.Formatter):
    """A logging.Formatter that turns a LogRecord into an event dict and runs it through a processor chain.

    The event starts as the record's extra fields (every attribute a plain LogRecord does not have) and its message;
    the record itself rides along under RECORD_KEY for the processors. Formatting never raises: if a processor fails,
    a reduced, scrubbed line that names the error is returned instead.
    """

    def __init__(self, processors: Sequence[Processor] | None = None, *, scrubber: SecretScrubber = default_scrubber):
        super().__init__()
        self._scrubber = scrubber
        self.processors: list[Processor] = list(processors) if processors is not None else default_processors(scrubber)

    def format(self, record: logging.LogRecord) -> str:
        rendered = getattr(record, _RENDERED_ATTR, None)
        if rendered is not None and rendered[0] is self:
            return rendered[1]
        try:
            event: Any = self._event_dict(record)
            for processor in self.processors:
                event = processor(event)
            if not isinstance(event, str):
                raise TypeError(f"the last processor returned {type(event).__name__}, not the rendered line")
        except Exception as error:
            event = self._fallback_line(record, error)
        setattr(record, _RENDERED_ATTR, (self, event))
        return event

    @staticmethod
    def _event_dict(record: logging.LogRecord) -> EventDict:
        event = {key: value for key, value in record.__dict__.items() if key not in _RECORD_ATTRS}
        event.update(getattr(record, _RESERVED_FIELDS_ATTR, None) or {})
        event["message"] = _record_message(record)
        event[RECORD_KEY] = record
        return event

    def _fallback_line(self, record: logging.LogRecord, error: Exception) -> str:
        scrub = self._scrubber.scrub_text
        line: dict[str, Any] = {"trace_id": None, "span_id": None}
        try:
            add_trace_context(line)
        except Exception:
            pass
        line.update(
            timestamp=epoch_iso_utc(record.created),
            level=record.levelname.lower(),
            message=scrub(_safe_str(record.msg)),
            logger=record.name,
            logging_error=scrub(f"{type(error).__name__}: {_safe_str(error)}"),
        )
        return json.dumps(line, ensure_ascii=True, separators=(",", ":"), default=_safe_str)


def _record_extra(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    if not fields:
        return None
    extra: dict[str, Any] = {}
    reserved: dict[str, Any] = {}
    for key, value in fields.items():
        (reserved if key in _RECORD_ATTRS else extra)[key] = value
    if reserved:
        extra[_RESERVED_FIELDS_ATTR] = reserved
    return extra


class StructuredLogger:
    """A thin wrapper over `logging.getLogger(name)`: keyword fields and `extra` become fields of the JSON line.

    Records go through stdlib logging unchanged (caplog, filters and other handlers see them), with each field as a
    record attribute. Fields named like a LogRecord attribute (`filename`, `module`, ...) are kept for the JSON line
    but not set on the record, since stdlib logging refuses to overwrite those.
    """

    __slots__ = ("_logger",)

    def __init__(self, name: str | None = None, *, logger: logging.Logger | None = None):
        self._logger = logger if logger is not None else logging.getLogger(name)

    @property
    def name(self) -> str:
        return self._logger.name

    @property
    def stdlib_logger(self) -> logging.Logger:
        return self._logger

    def is_enabled_for(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def debug(self, msg: object, /, *, extra: Mapping[str, Any] | None = None, exc_info: Any = None,
              stack_info: bool = False, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, extra, exc_info, stack_info, fields)

    def info(self, msg: object, /, *, extra: Mapping[str, Any] | None = None, exc_info: Any = None,
             stack_info: bool = False, **fields: Any) -> None:
        self._log(logging.INFO, msg, extra, exc_info, stack_info, fields)

    def warning(self, msg: object, /, *, extra: Mapping[str, Any] | None = None, exc_info: Any = None,
                stack_info: bool = False, **fields: Any) -> None:
        self._log(logging.WARNING, msg, extra, exc_info, stack_info, fields)

    def error(self, msg: object, /, *, extra: Mapping[str, Any] | None = None, exc_info: Any = None,
              stack_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, msg, extra, exc_info, stack_info, fields)

    def critical(self, msg: object, /, *, extra: Mapping[str, Any] | None = None, exc_info: Any = None,
                 stack_info: bool = False, **fields: Any) -> None:
        self._log(logging.CRITICAL, msg, extra, exc_info, stack_info, fields)

    def exception(self, msg: object, /, *, extra: Mapping[str, Any] | None = None, exc_info: Any = True,
                  stack_info: bool = False, **fields: Any) -> None:
        """Logs at ERROR with the exception being handled (or the one passed as exc_info)."""
        self._log(logging.ERROR, msg, extra, exc_info, stack_info, fields)

    def log(self, level: int, msg: object, /, *, extra: Mapping[str, Any] | None = None, exc_info: Any = None,
            stack_info: bool = False, **fields: Any) -> None:
        self._log(level, msg, extra, exc_info, stack_info, fields)

    def _log(self, level: int, msg: object, extra: Mapping[str, Any] | None, exc_info: Any, stack_info: bool,
             fields: Mapping[str, Any]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        merged = {**extra, **fields} if extra else fields
        # stacklevel 3 skips this frame and the level method, so funcName/lineno name the caller.
        self._logger.log(level, msg, extra=_record_extra(merged), exc_info=exc_info, stack_info=stack_info,
                         stacklevel=3)


def _as_structured(logger: StructuredLogger | logging.Logger | str) -> StructuredLogger:
    if isinstance(logger, StructuredLogger):
        return logger
    if isinstance(logger, logging.Logger):
        return StructuredLogger(logger=logger)
    return StructuredLogger(logger)


class _LoggedOperation:
    """The context manager and decorator behind log_operation; the decorator form enters a fresh copy per call."""

    __slots__ = ("_logger", "_operation", "_fields", "_clock", "_started")

    def __init__(self, logger: StructuredLogger, operation: str, fields: dict[str, Any], clock: Callable[[], float]):
        self._logger = logger
        self._operation = operation
        self._fields = fields
        self._clock = clock
        self._started: float | None = None

    def _fresh(self) -> _LoggedOperation:
        return _LoggedOperation(self._logger, self._operation, self._fields, self._clock)

    def _emit(self, method: Callable[..., None], suffix: str, exc_info: Any = None, **outcome: Any) -> None:
        # Logging must never replace or hide the host's own outcome.
        try:
            method(f"{self._operation} {suffix}", extra={"operation": self._operation, **self._fields, **outcome},
                   exc_info=exc_info)
        except Exception:
            pass

    def __enter__(self) -> _LoggedOperation:
        self._started = self._clock()
        self._emit(self._logger.info, "started")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        started = self._started if self._started is not None else self._clock()
        duration_ms = round((self._clock() - started) * 1000.0, 3)
        if exc is None:
            self._emit(self._logger.info, "finished", duration_ms=duration_ms)
        elif isinstance(exc, Exception):
            self._emit(self._logger.error, "failed", duration_ms=duration_ms, exc_info=(exc_type, exc, tb))
        else:
            # asyncio.CancelledError, KeyboardInterrupt, SystemExit: stopped from outside, not failed.
            self._emit(self._logger.warning, "cancelled", duration_ms=duration_ms,
                       exception_type=_exception_type_name(exc_type or type(exc)))
        return False

    async def __aenter__(self) -> _LoggedOperation:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh():
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return func(*args, **kwargs)

        return wrapper


def log_operation(
    logger: StructuredLogger | logging.Logger | str,
    operation: str,
    *,
    clock: Callable[[], float] = time.perf_counter,
    **fields: Any,
) -> _LoggedOperation:
    """Logs "<operation> started", then "<operation> finished" with `duration_ms`, or "<operation> failed" at ERROR.

    The failure line carries `duration_ms` and the exception; the exception itself propagates unchanged. Use it as
    `with` / `async with` block, or as a decorator of a sync or async function (each call is timed separately).
    A `with` object is not re-entrant: create one per block.
    """
    return _LoggedOperation(_as_structured(logger), operation, dict(fields), clock)


def _level_number(level: int | str) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(str(level).upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _report_errors_scrubbed(handler: logging.Handler, scrubber: SecretScrubber) -> None:
    """stdlib's ``Handler.handleError`` prints the failing record's raw message to stderr (a full disk, a closed
    console): it gets the scrubbed message instead, so a handler that fails leaks no secret either."""
    report = handler.handleError

    def handle_error(record: logging.LogRecord) -> None:
        safe = copy.copy(record)
        safe.msg, safe.args = scrubber.scrub_text(_record_message(record)), None
        report(safe)

    handler.handleError = handle_error  # type: ignore[method-assign]


def configure_logging(
    log_dir: str | os.PathLike[str] = "logs",
    level: int | str = "INFO",
    console: bool = True,
    filename: str = "app.log",
    backup_days: int = 30,
    clock: Callable[[], float] = time.time,
    scrubber: SecretScrubber = default_scrubber,
    background: bool = False,
) -> list[logging.Handler]:
    """Sends JSON lines from the root logger to stderr and to `log_dir/filename` (rotated daily, `backup_days` kept).

    Call it once in every process, also after fork (uvicorn workers, Celery prefork children). Calling it again
    replaces the handlers it installed before instead of adding more. Returns the handlers it installed on the root
    logger. The clock decides rotation; line timestamps are the records' own creation times.

    With ``background=True`` the caller only queues the record (its trace context captured on the spot); one
    thread per process formats and writes, so a slow disk or the file lock never stalls a request. The queue is
    bounded: when full, lines are dropped and counted, never waited for. Closing the returned handler drains it.
    """
    root_level = _level_number(level)
    # Build everything first, so a bad argument leaves the current configuration as it was.
    formatter = JsonLineFormatter(scrubber=scrubber)
    installed: list[logging.Handler] = []
    if console:
        console_handler = logging.StreamHandler(sys.stderr)
        console_handler.set_name(_HANDLER_NAME_PREFIX + "console")
        installed.append(console_handler)
    file_handler = DailyRotatingFileHandler(os.path.join(log_dir, filename), backup_days=backup_days, clock=clock)
    file_handler.set_name(_HANDLER_NAME_PREFIX + "file")
    installed.append(file_handler)
    for handler in installed:
        handler.setFormatter(formatter)
        _report_errors_scrubbed(handler, scrubber)
    if background:
        queue_handler = BackgroundLogHandler(installed)
        queue_handler.set_name(_HANDLER_NAME_PREFIX + "background")
        installed = [queue_handler]

    root = logging.getLogger()
    previous = [h for h in root.handlers if (h.get_name() or "").startswith(_HANDLER_NAME_PREFIX)]
    for handler in previous:
        root.removeHandler(handler)
    for handler in installed:
        root.addHandler(handler)
    root.setLevel(root_level)
    for handler in previous:
        try:
            handler.close()
        except Exception:
            pass
    return installed


class BackgroundLogHandler(logging.handlers.QueueHandler):
    """Queues records for a writer thread that runs the real handlers; the caller never formats nor writes.

    The trace context is captured when the record is queued, so lines carry the ids of the span that logged
    them; handlers that are not JSON lines (the OTLP log bridge) read it with `record_span_context`. After a fork
    (Celery prefork) the child gets a fresh queue and writer thread of its own.
    """

    def __init__(self, handlers: Sequence[logging.Handler], max_queued: int = 10_000) -> None:
        self._handlers = list(handlers)
        self._max_queued = max_queued
        self.dropped = 0
        super().__init__(queue.Queue(max_queued))
        self._listener = self._start_listener()
        _background_handlers.add(self)

    def _start_listener(self) -> logging.handlers.QueueListener:
        listener = logging.handlers.QueueListener(self.queue, *self._handlers, respect_handler_level=True)
        listener.start()
        return listener

    def _after_fork_in_child(self) -> None:
        # The writer thread did not survive the fork; the lock and queue may be held by a dead thread.
        self.createLock()
        self.queue = queue.Queue(self._max_queued)
        self._listener = self._start_listener()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # What can change after this call is fixed now: the message (its arguments are the caller's objects),
        # the exception (its traceback holds frames), the trace context. The line is rendered by the writer.
        # A copy: the other handlers of this record (the OTLP bridge, pytest's caplog) see it untouched.
        record = copy.copy(record)
        setattr(record, _TRACE_CONTEXT_ATTR, trace.get_current_span().get_span_context())
        record.msg, record.args = _record_message(record), None
        if record.exc_info:
            if record.exc_info[1] is not None:
                setattr(record, _EXCEPTION_ATTR, _exception_fields(record.exc_info))
            record.exc_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            _dropped_lines.add()

    def flush(self, timeout: float = 5.0) -> None:
        """Waits until every queued line is written, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._listener is not None and self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self, timeout: float = 5.0) -> None:
        """Writes what is queued (at most ``timeout`` seconds), then stops the writer; never raises."""
        listener, self._listener = self._listener, None
        try:
            if listener is not None and listener._thread is not None:
                try:
                    self.queue.put(listener._sentinel, timeout=timeout)  # behind every queued line
                except queue.Full:  # the writer is stuck: give up on the queued lines, not on shutdown
                    pass
                listener._thread.join(timeout)
                listener._thread = None
            for handler in self._handlers:
                handler.close()
        except Exception:
            pass
        finally:
            _background_handlers.discard(self)
            super().close()


_background_handlers: weakref.WeakSet[BackgroundLogHandler] = weakref.WeakSet()
# Over every background handler of this process, closed ones too: exported as otel_monitor.telemetry.dropped.
_dropped_lines = LossCounter()


def dropped_log_lines() -> int:
    """Records this process's background log handlers dropped because their queue was full, since start or fork."""
    return _dropped_lines.value


def _restart_background_writers() -> None:
    _dropped_lines.reset_after_fork()
    for handler in list(_background_handlers):
        handler._after_fork_in_child()


def _stop_background_writers() -> None:
    for handler in list(_background_handlers):
        handler.close()


os.register_at_fork(after_in_child=_restart_background_writers)
atexit.register(_stop_background_writers)

"""BackgroundLogHandler: the caller only queues a record; one writer thread per process formats and writes it."""

from __future__ import annotations

import atexit
import copy
import logging
import logging.handlers
import os
import queue
import time
import weakref
from collections.abc import Sequence

from opentelemetry import trace

from otel_monitor.instrument.loss_counter import LossCounter
from otel_monitor.logs.records import EXCEPTION_ATTR, TRACE_CONTEXT_ATTR, exception_fields, record_message

__all__ = ["BackgroundLogHandler", "dropped_log_lines"]


class BackgroundLogHandler(logging.handlers.QueueHandler):
    """Queues records for a writer thread that runs the real handlers; the caller never formats nor writes.

    The trace context is captured when the record is queued, so lines carry the ids of the span that logged
    them; handlers that are not JSON lines (the OTLP log bridge) read it with `record_span_context`. After a fork
    (Celery prefork) the child gets a fresh queue and writer thread of its own.
    """

    queue: queue.Queue[logging.LogRecord]
    _listener: logging.handlers.QueueListener | None

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
        setattr(record, TRACE_CONTEXT_ATTR, trace.get_current_span().get_span_context())
        record.msg, record.args = record_message(record), None
        if record.exc_info:
            if record.exc_info[1] is not None:
                setattr(record, EXCEPTION_ATTR, exception_fields(record.exc_info))
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
                    # Behind every queued line; the stubs do not know the listener's end marker.
                    self.queue.put(listener._sentinel, timeout=timeout)  # type: ignore[attr-defined]
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

"""configure_logging: JSON lines from the root logger to stderr and a daily-rotated file, once per process."""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
from collections.abc import Callable

from otel_monitor.logs.background import BackgroundLogHandler
from otel_monitor.logs.files import DailyRotatingFileHandler
from otel_monitor.logs.formatter import JsonLineFormatter
from otel_monitor.logs.records import record_message
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["configure_logging"]

# Names of the handlers configure_logging installs, so calling it again replaces them and nothing else.
_HANDLER_NAME_PREFIX = "otel_monitor."


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
        safe.msg, safe.args = scrubber.scrub_text(record_message(record)), None
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

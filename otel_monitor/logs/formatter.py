"""The logging.Formatter that renders each record as one scrubbed JSON line, and never raises."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from structlog.stdlib import ProcessorFormatter
from structlog.typing import Processor

from otel_monitor._utc_time import epoch_iso_utc
from otel_monitor.logs.processors import RECORD_KEY, add_trace_ids, default_processors
from otel_monitor.logs.records import RENDERED_ATTR, safe_str
from otel_monitor.redaction.scrubber import REDACTED, SecretScrubber, default_scrubber

__all__ = ["JsonLineFormatter"]


class JsonLineFormatter(ProcessorFormatter):
    """structlog's ProcessorFormatter running our processor chain (`default_processors`) on stdlib records.

    The event starts as the record's message and %-arguments, exception and stack; `add_extra_fields` adds the
    record's fields. A record is rendered once for all the handlers sharing this formatter. Formatting never
    raises: if a processor fails, a reduced, scrubbed line that names the error is returned instead.
    """

    def __init__(self, processors: Sequence[Processor] | None = None, *, scrubber: SecretScrubber = default_scrubber):
        # The message is formatted by the chain (`format_message`), which keeps %-arguments that do not fit
        # instead of raising as `LogRecord.getMessage` does.
        super().__init__(
            processors=list(processors) if processors is not None else default_processors(scrubber),
            pass_foreign_args=True,
            use_get_message=False,
        )
        self._scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        rendered = getattr(record, RENDERED_ATTR, None)
        if rendered is not None and rendered[0] is self:
            return rendered[1]
        try:
            line = super().format(record)
        except Exception as error:
            line = self._fallback_line(record, error)
        setattr(record, RENDERED_ATTR, (self, line))
        return line

    def _fallback_line(self, record: logging.LogRecord, error: Exception) -> str:
        ids: dict[str, Any] = {RECORD_KEY: record}
        try:
            add_trace_ids(None, "", ids)
        except Exception:
            pass
        line = {
            "trace_id": ids.get("trace_id"),
            "span_id": ids.get("span_id"),
            "timestamp": epoch_iso_utc(record.created),
            "level": record.levelname.lower(),
            "message": self._scrub(safe_str(record.msg)),
            "logger": record.name,
            "logging_error": self._scrub(f"{type(error).__name__}: {safe_str(error)}"),
        }
        return json.dumps(line, ensure_ascii=True, separators=(",", ":"), default=safe_str)

    def _scrub(self, text: str) -> str:
        try:
            return self._scrubber.scrub_text(text)
        except Exception:  # text that cannot be scrubbed is not written
            return REDACTED

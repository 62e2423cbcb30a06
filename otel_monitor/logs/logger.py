"""StructuredLogger: a stdlib logger whose keyword fields become fields of the JSON line."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from otel_monitor.logs.records import RECORD_ATTRS, RESERVED_FIELDS_ATTR

__all__ = ["StructuredLogger"]


def _record_extra(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    if not fields:
        return None
    extra: dict[str, Any] = {}
    reserved: dict[str, Any] = {}
    for key, value in fields.items():
        (reserved if key in RECORD_ATTRS else extra)[key] = value
    if reserved:
        extra[RESERVED_FIELDS_ATTR] = reserved
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

    def debug(
        self,
        msg: object,
        /,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: Any = None,
        stack_info: bool = False,
        **fields: Any,
    ) -> None:
        self._log(logging.DEBUG, msg, extra, exc_info, stack_info, fields)

    def info(
        self,
        msg: object,
        /,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: Any = None,
        stack_info: bool = False,
        **fields: Any,
    ) -> None:
        self._log(logging.INFO, msg, extra, exc_info, stack_info, fields)

    def warning(
        self,
        msg: object,
        /,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: Any = None,
        stack_info: bool = False,
        **fields: Any,
    ) -> None:
        self._log(logging.WARNING, msg, extra, exc_info, stack_info, fields)

    def error(
        self,
        msg: object,
        /,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: Any = None,
        stack_info: bool = False,
        **fields: Any,
    ) -> None:
        self._log(logging.ERROR, msg, extra, exc_info, stack_info, fields)

    def critical(
        self,
        msg: object,
        /,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: Any = None,
        stack_info: bool = False,
        **fields: Any,
    ) -> None:
        self._log(logging.CRITICAL, msg, extra, exc_info, stack_info, fields)

    def exception(
        self,
        msg: object,
        /,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: Any = True,
        stack_info: bool = False,
        **fields: Any,
    ) -> None:
        """Logs at ERROR with the exception being handled (or the one passed as exc_info)."""
        self._log(logging.ERROR, msg, extra, exc_info, stack_info, fields)

    def log(
        self,
        level: int,
        msg: object,
        /,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: Any = None,
        stack_info: bool = False,
        **fields: Any,
    ) -> None:
        self._log(level, msg, extra, exc_info, stack_info, fields)

    def _log(
        self,
        level: int,
        msg: object,
        extra: Mapping[str, Any] | None,
        exc_info: Any,
        stack_info: bool,
        fields: Mapping[str, Any],
    ) -> None:
        if not self._logger.isEnabledFor(level):
            return
        merged = {**extra, **fields} if extra else fields
        # stacklevel 3 skips this frame and the level method, so funcName/lineno name the caller.
        self._logger.log(
            level, msg, extra=_record_extra(merged), exc_info=exc_info, stack_info=stack_info, stacklevel=3
        )

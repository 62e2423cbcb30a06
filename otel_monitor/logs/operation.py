"""log_operation: logs the start, the end and the duration of an operation, or its failure."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.logs.records import exception_type_name

__all__ = ["log_operation"]


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
            method(
                f"{self._operation} {suffix}",
                extra={"operation": self._operation, **self._fields, **outcome},
                exc_info=exc_info,
            )
        except Exception:
            pass

    def __enter__(self) -> _LoggedOperation:
        self._started = self._clock()
        self._emit(self._logger.info, "started")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> Literal[False]:
        started = self._started if self._started is not None else self._clock()
        duration_ms = round((self._clock() - started) * 1000.0, 3)
        if exc is None:
            self._emit(self._logger.info, "finished", duration_ms=duration_ms)
        elif isinstance(exc, Exception):
            self._emit(self._logger.error, "failed", duration_ms=duration_ms, exc_info=(exc_type, exc, tb))
        else:
            # asyncio.CancelledError, KeyboardInterrupt, SystemExit: stopped from outside, not failed.
            self._emit(
                self._logger.warning,
                "cancelled",
                duration_ms=duration_ms,
                exception_type=exception_type_name(exc_type or type(exc)),
            )
        return False

    async def __aenter__(self) -> _LoggedOperation:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
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

"""A store's own small thread pool for its blocking calls, so a hanging database holds only the store's threads.

``asyncio.to_thread`` runs on the event loop's default executor, which everything else in the process shares (the
health checks among them): a database that accepts connections and never answers would occupy every one of its
threads. Each store runs its calls through a BlockingExecutor instead: at most ``max_workers`` named threads, and a
call that found no free thread within ``start_timeout`` seconds is dropped before it runs and raises ``busy_error``,
so callers queued behind a hanging call answer instead of waiting on it. A call that started runs to its end under
the store's own timeouts.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["BlockingExecutor", "ExecutorBusyError"]

T = TypeVar("T")


class ExecutorBusyError(RuntimeError):
    """No thread of the executor was free within its start timeout; the call was not run."""


class BlockingExecutor:
    """Runs blocking calls from async code on ``max_workers`` threads named ``name``; ``shutdown()`` with the
    service. A call after shutdown starts a new pool (a stopped service may be started again)."""

    def __init__(self, name: str, *, max_workers: int = 2, start_timeout: float = 10.0,
                 busy_error: Callable[[str], Exception] = ExecutorBusyError) -> None:
        if max_workers < 1 or start_timeout <= 0:
            raise ValueError("max_workers must be at least 1 and start_timeout positive")
        self.name = name
        self.max_workers = max_workers
        self._start_timeout = start_timeout
        self._busy_error = busy_error
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _current_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.name)
            return self._pool

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)`` on one of the threads, in the caller's context (as ``asyncio.to_thread``)."""
        context = contextvars.copy_context()
        submitted = self._current_pool().submit(functools.partial(context.run, call, *args, **kwargs))
        result = asyncio.wrap_future(submitted)
        try:
            return await asyncio.wait_for(asyncio.shield(result), self._start_timeout)
        except TimeoutError:
            if submitted.cancel():  # still queued: it never runs
                raise self._busy_error(f"no free thread of {self.name} within {self._start_timeout:g} s") from None
            return await result
        except asyncio.CancelledError:
            submitted.cancel()  # the caller is gone: a call not yet started is dropped, a running one finishes
            raise

    def shutdown(self) -> None:
        """Drops the calls not yet started and lets the running ones finish in the background (never waits)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

"""A store's own small pool of daemon threads for its blocking calls: a hanging database holds only those threads.

``asyncio.to_thread`` runs on the event loop's default executor, which everything else in the process shares (the
health checks among them): a database that accepts connections and never answers would occupy every one of its
threads. Each store runs its calls through a BlockingExecutor instead: at most ``max_workers`` named threads, and a
call that found no free thread within ``start_timeout`` seconds is dropped before it runs and raises ``busy_error``,
so callers queued behind a hanging call answer instead of waiting on it. A call that started runs to its end under
the store's own timeouts.

The threads are daemon threads of our own, not a ThreadPoolExecutor's: Python joins a ThreadPoolExecutor's threads
at interpreter exit, so a call stuck on a database would keep the whole process from exiting. A daemon thread is
abandoned at exit, and a stuck call with it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["BlockingExecutor", "ExecutorBusyError", "CLOSE_WAIT_SECONDS"]

T = TypeVar("T")
# How long a stopping service waits for a store's close. Close waits for the store's lock, which a call stuck on the
# database holds for as long as it is stuck; past this the store is left behind so that shutdown stays prompt.
CLOSE_WAIT_SECONDS = 3.0


class ExecutorBusyError(RuntimeError):
    """No thread of the executor was free within its start timeout; the call was not run."""


class _DaemonPool:
    """Up to ``max_workers`` daemon threads taking calls from one queue, started as calls arrive (as a
    ThreadPoolExecutor does: a new thread only when none is idle)."""

    def __init__(self, name: str, max_workers: int) -> None:
        self._name = name
        self._max_workers = max_workers
        self._calls: queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0
        self._closed = False

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} is shut down")
            self._calls.put((future, call))
            if not self._idle.acquire(blocking=False) and self._threads < self._max_workers:
                threading.Thread(target=self._work, name=f"{self._name}_{self._threads}", daemon=True).start()
                self._threads += 1
        return future

    def _work(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:
                    future.set_exception(exc)
                    del exc
                else:
                    future.set_result(result)
                    del result
            del future, call
            self._idle.release()

    def shutdown(self) -> None:
        """Cancels the calls not yet started and tells each thread to end after its current call; never waits."""
        with self._lock:
            self._closed = True
            threads = self._threads
        while True:
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in range(threads):
            self._calls.put(None)


class BlockingExecutor:
    """Runs blocking calls from async code on ``max_workers`` daemon threads named ``name``; ``shutdown()`` with
    the service. A call after shutdown starts a new pool (a stopped service may be started again)."""

    def __init__(
        self,
        name: str,
        *,
        max_workers: int = 2,
        start_timeout: float = 10.0,
        busy_error: Callable[[str], Exception] = ExecutorBusyError,
    ) -> None:
        if max_workers < 1 or start_timeout <= 0:
            raise ValueError("max_workers must be at least 1 and start_timeout positive")
        self.name = name
        self.max_workers = max_workers
        self._start_timeout = start_timeout
        self._busy_error = busy_error
        self._lock = threading.Lock()
        self._pool: _DaemonPool | None = None

    def _submit(self, call: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._pool is None:
                self._pool = _DaemonPool(self.name, self.max_workers)
            return self._pool.submit(call)

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)`` on one of the threads, in the caller's context (as ``asyncio.to_thread``)."""
        context = contextvars.copy_context()
        submitted = self._submit(functools.partial(context.run, call, *args, **kwargs))
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

    async def shutdown_after(self, close: Callable[[], Any], /, timeout: float = CLOSE_WAIT_SECONDS) -> None:
        """Runs ``close`` (the store's) on the threads, waiting at most ``timeout`` seconds, then shuts down either
        way. Raises TimeoutError when ``close`` did not end in time (it goes on behind the call holding the store)."""
        try:
            await asyncio.wait_for(self.run(close), timeout)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Drops the calls not yet started and lets the running ones finish in the background (never waits)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

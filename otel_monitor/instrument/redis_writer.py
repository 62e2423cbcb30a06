"""Writes to Redis for the host application off its thread: queued, batched into pipelines, never waited for."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from otel_monitor.instrument.loss_counter import LossCounter

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

    # What the writer queues: a function adding commands to a pipeline.
    PipelineCommand = Callable[[Pipeline], None]

__all__ = ["RedisWriter", "LostWrites", "lost_writes"]

_log = logging.getLogger(__name__)
_writers: weakref.WeakSet[RedisWriter] = weakref.WeakSet()
# This process's totals over every writer, also those already gone: exported as otel_monitor.telemetry.dropped.
_dropped_writes = LossCounter()
_failed_writes = LossCounter()


class LostWrites(NamedTuple):
    """Commands of this process since it started or forked that never reached Redis."""

    dropped: int  # the queue was full
    failed: int  # Redis refused them or was away


def lost_writes() -> LostWrites:
    return LostWrites(_dropped_writes.value, _failed_writes.value)


class RedisWriter:
    """One background thread per process sends queued commands to Redis in pipelines, in the order submitted.

    ``submit`` takes a function that adds commands to a pipeline; it never blocks: when the queue is full the
    command is dropped and counted. A Redis that is down or slow costs the host nothing; failures are logged
    at most once a minute. After a fork the child starts with an empty queue of its own.
    """

    def __init__(self, client: Redis, *, max_queued: int = 10_000, batch: int = 500) -> None:
        self._client = client
        self._max_queued = max_queued
        self._batch = batch
        self.dropped = 0
        self.failed = 0
        self._last_warning = 0.0
        self._queue: queue.Queue[PipelineCommand] = queue.Queue(max_queued)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        _writers.add(self)

    def submit(self, command: PipelineCommand) -> bool:
        """Queues ``command(pipeline)``; False if it was dropped because the queue is full."""
        if self._thread is None or not self._thread.is_alive():
            self._start()
        try:
            self._queue.put_nowait(command)
            return True
        except queue.Full:
            self.dropped += 1
            _dropped_writes.add()
            return False

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="otel-monitor-redis", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            commands = [self._queue.get()]
            while len(commands) < self._batch:
                try:
                    commands.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                pipe = self._client.pipeline(transaction=False)
                for command in commands:
                    command(pipe)
                pipe.execute()
            except Exception as exc:  # telemetry state is best effort; the host's work already happened
                self.failed += len(commands)
                _failed_writes.add(len(commands))
                now = time.monotonic()
                if now - self._last_warning > 60:
                    self._last_warning = now
                    _log.warning("Redis writes failed (%s); %d commands lost so far", type(exc).__name__, self.failed)
            finally:
                for _ in commands:
                    self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> None:
        """Waits until every queued command is sent, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (
            self._thread is not None
            and self._thread.is_alive()
            and self._queue.unfinished_tasks
            and time.monotonic() < deadline
        ):
            time.sleep(0.005)

    def _after_fork_in_child(self) -> None:
        # The parent's queued commands are the parent's to send; its thread and locks did not survive.
        self._queue = queue.Queue(self._max_queued)
        self._lock = threading.Lock()
        self._thread = None


def _reset_after_fork() -> None:
    _dropped_writes.reset_after_fork()
    _failed_writes.reset_after_fork()
    for writer in list(_writers):
        writer._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)

"""Stopping a service's background tasks: cancelled, and cancelled again until they have ended."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]

# How long a cancelled task may carry on before it is cancelled again.
RECANCEL_SECONDS = 1.0


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancels ``tasks`` (None and finished ones are skipped) and returns once every one has ended. A task that
    swallowed its cancellation is cancelled again every second: on Python 3.11, ``asyncio.wait_for`` loses a cancel
    that arrives as its inner call completes, and a service loop around it then carries on, so a single cancel and
    ``await task`` can wait forever. The tasks' exceptions are retrieved, not raised (they are ending anyway)."""
    pending = {task for task in tasks if task is not None and not task.done()}
    ended = set(pending)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
    for task in ended:
        if not task.cancelled():
            task.exception()

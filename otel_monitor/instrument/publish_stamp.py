"""Stamps each Celery task message with the time it was published, so the health check can age a pending queue."""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any

__all__ = ["PUBLISHED_AT_HEADER", "stamp_published_at", "published_at_stamper"]

# Message header holding the publish time, epoch seconds (float).
PUBLISHED_AT_HEADER = "otel_monitor_published_at"


def published_at_stamper(clock: Callable[[], float] = time.time) -> Callable[..., None]:
    """A ``before_task_publish`` receiver stamping ``PUBLISHED_AT_HEADER`` with ``clock()``.

    Overwrites an existing stamp: a retried or re-sent task is a new message, waiting from now.
    """

    def stamp(headers: MutableMapping[str, object] | None = None, **_kwargs: Any) -> None:
        if headers is not None:
            headers[PUBLISHED_AT_HEADER] = clock()

    return stamp


# Connect with: celery.signals.before_task_publish.connect(stamp_published_at, weak=False)
stamp_published_at = published_at_stamper()

"""The one place that decides what a delivery's outcome means: done, retry (and when), or give up. HTTP answers (or
their absence) are classified here, and the retry policy spaces the attempts."""

from __future__ import annotations

from dataclasses import dataclass, replace

import httpx
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DeliveryResult", "RetryPolicy", "classify_status", "classify_transport_error"]

_BODY_EXCERPT = 200


@dataclass(frozen=True)
class DeliveryResult:
    """``ok``: delivered; otherwise ``retryable`` says whether trying again may help. ``detail`` is scrubbed text;
    ``status_code`` the receiver's HTTP status, when it answered one."""

    ok: bool
    retryable: bool = False
    detail: str = ""
    status_code: int | None = None

    def with_detail(self, detail: str) -> DeliveryResult:
        """The same outcome with ``detail`` (e.g. scrubbed) instead."""
        return replace(self, detail=detail)


def classify_status(status: int, body: str = "") -> DeliveryResult:
    """2xx ok; 429 and 5xx retryable; every other status (other 4xx, odd 1xx/3xx) permanent."""
    if 200 <= status < 300:
        return DeliveryResult(ok=True, detail=f"HTTP {status}", status_code=status)
    excerpt = " ".join(body.split())[:_BODY_EXCERPT]
    detail = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    return DeliveryResult(ok=False, retryable=status == 429 or 500 <= status < 600, detail=detail, status_code=status)


def classify_transport_error(exc: BaseException) -> DeliveryResult:
    """No answer at all (refused, reset, timed out): always worth retrying. The URL is never part of the detail."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "transport error"
    return DeliveryResult(ok=False, retryable=True, detail=f"{kind}: {type(exc).__name__}")


class RetryPolicy(BaseModel):
    """Exponential backoff from ``initial`` doubling to ``max``; retryable failures are given up after ``max_age``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_backoff_seconds: float = Field(1.0, gt=0)
    max_backoff_seconds: float = Field(300.0, gt=0)
    max_age_seconds: float = Field(24 * 3600.0, gt=0)

    def backoff(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        return min(self.initial_backoff_seconds * 2 ** max(attempts - 1, 0), self.max_backoff_seconds)

"""The one place that decides what an HTTP answer (or its absence) means for a delivery: done, retry, or give up."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from otel_monitor.monitor.alerting.notifiers.notification import DeliveryResult
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["classify_status", "classify_transport_error", "post_json"]

_BODY_EXCERPT = 200


def classify_status(status: int, body: str = "") -> DeliveryResult:
    """2xx ok; 429 and 5xx retryable; every other status (other 4xx, odd 1xx/3xx) permanent."""
    if 200 <= status < 300:
        return DeliveryResult(ok=True, detail=f"HTTP {status}")
    excerpt = " ".join(body.split())[:_BODY_EXCERPT]
    detail = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    return DeliveryResult(ok=False, retryable=status == 429 or 500 <= status < 600, detail=detail)


def classify_transport_error(exc: BaseException) -> DeliveryResult:
    """No answer at all (refused, reset, timed out): always worth retrying. The URL is never part of the detail."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "transport error"
    return DeliveryResult(ok=False, retryable=True, detail=f"{kind}: {type(exc).__name__}")


async def post_json(client: httpx.AsyncClient, url: str, payload: object, *, timeout: float,
                    headers: Mapping[str, str] | None = None,
                    scrubber: SecretScrubber = default_scrubber) -> DeliveryResult:
    """POSTs ``payload`` as JSON and classifies the outcome; the detail is scrubbed of every registered secret."""
    try:
        response = await client.post(url, json=payload, headers=dict(headers or {}), timeout=timeout)
    except httpx.HTTPError as exc:
        result = classify_transport_error(exc)
    else:
        result = classify_status(response.status_code, response.text)
    return DeliveryResult(result.ok, result.retryable, scrubber.scrub_text(result.detail))

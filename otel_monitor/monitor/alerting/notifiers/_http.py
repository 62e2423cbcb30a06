"""The shared shape of the HTTP receivers: an injected (or per-call) httpx client, a timeout and the scrubber; a POST
of JSON whose outcome is classified by the retry policy's rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict
from urllib.parse import urlsplit

import httpx

from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult, classify_status, classify_transport_error
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["HttpReceiver", "HttpOptions", "post_json", "truncate", "DEFAULT_TIMEOUT_SECONDS"]

DEFAULT_TIMEOUT_SECONDS = 10.0


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: object,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    scrubber: SecretScrubber = default_scrubber,
) -> DeliveryResult:
    """POSTs ``payload`` as JSON and classifies the outcome; the detail is scrubbed of every registered secret."""
    try:
        response = await client.post(url, json=payload, headers=dict(headers or {}), timeout=timeout)
    except httpx.HTTPError as exc:
        result = classify_transport_error(exc)
    else:
        result = classify_status(response.status_code, response.text)
    return result.with_detail(scrubber.scrub_text(result.detail))


class HttpOptions(TypedDict, total=False):
    """The keyword options every HTTP receiver takes, as ``HttpReceiver`` defines them."""

    client: httpx.AsyncClient | None
    timeout: float
    scrubber: SecretScrubber


class HttpReceiver:
    """Base of the JSON-over-HTTP notifiers; subclasses build the payload, this posts and classifies it."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        scrubber: SecretScrubber = default_scrubber,
        url_is_secret: bool = True,
    ) -> None:
        self.name = name
        self._url = url
        self._client = client
        self._timeout = timeout
        self._scrubber = scrubber
        # The URL of an incoming webhook is itself the credential (Slack, Discord): never shown anywhere.
        # The receiver may echo the path back in an error body, so the path and query are secrets as well.
        if url_is_secret:
            parts = urlsplit(url)
            for secret in (url, parts.path, parts.query):
                scrubber.register(secret)

    async def _post(
        self, payload: object, headers: Mapping[str, str] | None = None, url: str | None = None
    ) -> DeliveryResult:
        target = url or self._url
        if self._client is not None:
            return await post_json(
                self._client, target, payload, timeout=self._timeout, headers=headers, scrubber=self._scrubber
            )
        async with httpx.AsyncClient() as client:
            return await post_json(
                client, target, payload, timeout=self._timeout, headers=headers, scrubber=self._scrubber
            )


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut (receivers reject longer fields)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"

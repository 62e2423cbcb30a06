"""The shared shape of the HTTP receivers: an injected (or per-call) httpx client, a timeout and the scrubber."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from otel_monitor.monitor.alerting.notifiers.http_status import post_json
from otel_monitor.monitor.alerting.notifiers.notification import DeliveryResult
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

DEFAULT_TIMEOUT_SECONDS = 10.0


class HttpReceiver:
    """Base of the JSON-over-HTTP notifiers; subclasses build the payload, this posts and classifies it."""

    def __init__(self, name: str, url: str, *, client: httpx.AsyncClient | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, scrubber: SecretScrubber = default_scrubber,
                 url_is_secret: bool = True) -> None:
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

    async def _post(self, payload: object, headers: Mapping[str, str] | None = None,
                    url: str | None = None) -> DeliveryResult:
        target = url or self._url
        if self._client is not None:
            return await post_json(self._client, target, payload, timeout=self._timeout, headers=headers,
                                   scrubber=self._scrubber)
        async with httpx.AsyncClient() as client:
            return await post_json(client, target, payload, timeout=self._timeout, headers=headers,
                                   scrubber=self._scrubber)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut (receivers reject longer fields)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"

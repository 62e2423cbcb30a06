"""Sentry: one event per alert transition, grouped by the alert's fingerprint into one Sentry issue per alert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import httpx
import sentry_sdk
from pydantic import Field, SecretStr, field_validator
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sentry_sdk.utils import BadDsn, Dsn

from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult, classify_status, classify_transport_error
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers._http import DEFAULT_TIMEOUT_SECONDS
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

if TYPE_CHECKING:  # the SDK defines its event and level types for type checkers only
    from sentry_sdk._types import Event, LogLevelStr

__all__ = ["SentryChannel", "SentryNotifier", "sentry_event"]

_LEVELS: dict[Priority, LogLevelStr] = {Priority.P0: "fatal", Priority.P1: "error", Priority.P2: "warning"}
_CLIENT_NAME = f"otel-monitor/sentry-sdk-{sentry_sdk.VERSION}"


def sentry_event(notification: Notification) -> Event:
    """The event: ``fingerprint=[alert fingerprint]``, level by priority, tags and the operator's extras.

    The event id is the notification id, so a retry after an unanswered attempt is the same event to Sentry."""
    alert = notification.alert
    details = notification.details()
    tags = {
        "error_code": alert.error_code,
        "priority": alert.priority.value,
        "rule": alert.rule,
        "service": alert.service,
    }
    extra: dict[str, object] = {
        key: details[key]
        for key in (
            "action_required",
            "runbook",
            "trace_id",
            "jaeger_url",
            "logs_url",
            "inhibited",
            "repeat",
            "ack_url",
        )
        if key in details
    }
    return {
        "event_id": notification.id,
        "message": notification.title,
        "level": _LEVELS[alert.priority],
        "logger": "otel_monitor.alerts",
        "fingerprint": [alert.fingerprint],
        "tags": {key: value for key, value in tags.items() if value},
        "extra": extra,
    }


class _EnvelopeCollector(Transport):
    """Keeps what the SDK would send, so the notifier posts it itself and learns the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


class SentryChannel(ChannelSettings):
    """One Sentry issue per alert fingerprint; ``environment`` is the Sentry environment of the events."""

    type: Literal["sentry"]
    dsn: SecretStr
    environment: str = Field("production", min_length=1)

    @field_validator("dsn")
    @classmethod
    def _dsn_parses(cls, dsn: SecretStr) -> SecretStr:
        try:
            Dsn(dsn.get_secret_value())
        except BadDsn as exc:  # the message quotes the path only, never the key
            raise ValueError(f"invalid Sentry DSN: {exc.args[0].split('(')[0].strip()}") from None
        return dsn


class SentryNotifier:
    """Builds each event with a ``sentry_sdk.Client`` of its own (never the global one: the host application may
    use Sentry itself) and posts its envelope to the DSN's project within ``timeout`` seconds: 2xx delivered,
    429/5xx and no answer retried, other 4xx permanent. Resolved transitions are not sent: Sentry resolves issues
    in its own workflow, and another event would reopen the issue."""

    def __init__(
        self,
        name: str,
        dsn: str,
        *,
        environment: str = "production",
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        scrubber: SecretScrubber = default_scrubber,
    ) -> None:
        scrubber.register(dsn)
        try:
            parsed = Dsn(dsn)
        except BadDsn as exc:
            raise ValueError(f"invalid Sentry DSN: {exc.args[0].split('(')[0].strip()}") from None
        for secret in (parsed.public_key, parsed.secret_key):
            scrubber.register(secret)
        self.name = name
        self._auth = parsed.to_auth(client=_CLIENT_NAME)
        self._collector = _EnvelopeCollector()
        self._sdk = sentry_sdk.Client(
            dsn,
            environment=environment,
            transport=self._collector,
            default_integrations=False,
            auto_enabling_integrations=False,
            integrations=[],
            enable_backpressure_handling=False,
            max_breadcrumbs=0,
            sample_rate=1.0,
        )
        self._client = client
        self._timeout = timeout
        self._scrubber = scrubber

    def _envelopes(self, notification: Notification) -> Sequence[Envelope]:
        # capture_event hands the envelope to the collector synchronously: nothing else runs in between.
        self._sdk.capture_event(sentry_event(notification))
        envelopes, self._collector.envelopes = self._collector.envelopes, []
        return envelopes

    async def notify(self, notification: Notification) -> DeliveryResult:
        if notification.resolved:
            return DeliveryResult(ok=True, detail="resolved: not sent (Sentry issues are resolved in Sentry)")
        envelopes = self._envelopes(notification)
        if not envelopes:
            return DeliveryResult(ok=False, detail="the Sentry SDK dropped the event")
        result = DeliveryResult(ok=True)
        for envelope in envelopes:
            result = await self._post(envelope.serialize())
            if not result.ok:
                break
        return result.with_detail(self._scrubber.scrub_text(result.detail))

    async def _post(self, body: bytes) -> DeliveryResult:
        headers = {
            "Content-Type": "application/x-sentry-envelope",
            "X-Sentry-Auth": self._auth.to_header(),
            "User-Agent": _CLIENT_NAME,
        }
        url = self._auth.get_api_url()
        try:
            if self._client is not None:
                response = await self._client.post(url, content=body, headers=headers, timeout=self._timeout)
            else:
                async with httpx.AsyncClient() as client:
                    response = await client.post(url, content=body, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return classify_transport_error(exc)
        return classify_status(response.status_code, response.text)

    def close(self, timeout: float = 2.0) -> None:
        """Flushes and closes the SDK client (nothing is queued in it: each notification is posted at once)."""
        self._sdk.close(timeout=timeout)

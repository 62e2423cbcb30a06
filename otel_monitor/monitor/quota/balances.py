"""Polls the balance APIs of D-ID and Stability AI; a failed poll keeps the last value, marked stale, with its code."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypedDict, Unpack

import httpx
from pydantic import SecretStr

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.classification import classify_exception, classify_response
from otel_monitor.instrument.error_codes import ProviderFailure, provider_error_code
from otel_monitor.logs.logger import StructuredLogger

__all__ = ["Balance", "BalancePoller", "PollerOptions", "DidCreditsPoller", "StabilityBalancePoller"]

_log = StructuredLogger("otel_monitor.quota.balances")


@dataclass(frozen=True)
class Balance:
    """A provider's credits as last read: ``used`` of ``total``; all None before a first successful read."""

    service: str
    used: float | None = None
    total: float | None = None
    remaining: float | None = None
    fetched_at: dt.datetime | None = None
    stale: bool = False
    error_code: str | None = None
    configured: bool = True
    # The nearest expiry of credits still unspent (D-ID's credit packs expire); None: none known, or none expire.
    expires_at: dt.datetime | None = None


class _BadBalance(Exception):
    """The provider answered 200 with a body that is not its balance document."""


def _secret(value: SecretStr | str | None) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value or None


class PollerOptions(TypedDict, total=False):
    """The keyword options every poller takes, as ``BalancePoller`` defines them."""

    client: httpx.AsyncClient | None
    timeout: float
    clock: Callable[[], dt.datetime]


class BalancePoller:
    """Reads one provider's balance API with an ``httpx.AsyncClient`` (injected, or its own); never raises."""

    service = ""
    path = ""
    # Whether the provider's credits expire (its balance document dates them): the quota then shows ``expires_at``.
    credits_expire = False

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str | None,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._url = base_url.rstrip("/") + self.path
        self._api_key = _secret(api_key)
        self._client = client
        self._owns_client = client is None
        self._timeout = timeout
        self._clock = clock
        self.last = Balance(self.service, configured=self._api_key is not None)

    def _headers(self, key: str) -> dict[str, str]:
        raise NotImplementedError

    def _balance(self, document: Mapping) -> tuple[float, float]:
        """(used, total) from the provider's answer."""
        raise NotImplementedError

    def _expires_at(self, document: Mapping) -> dt.datetime | None:
        """The nearest expiry of unspent credits in the provider's answer; None where credits do not expire."""
        return None

    async def poll(self) -> Balance:
        """Reads the balance now; on failure the last known values stay, with ``stale`` and ``error_code`` set."""
        if self._api_key is None:
            return self.last
        try:
            response = await self._http().get(self._url, headers=self._headers(self._api_key), timeout=self._timeout)
        except Exception as exc:
            return self._failed(classify_exception(self.service, exc).error_code(self.service), f"{type(exc).__name__}")
        if response.status_code != 200:
            code = classify_response(self.service, response.status_code, response.content).error_code(self.service)
            return self._failed(code, f"HTTP {response.status_code}")
        try:
            document = response.json()
            if not isinstance(document, Mapping):
                raise _BadBalance("not a JSON object")
            used, total = self._balance(document)
            expires_at = self._expires_at(document)
        except (ValueError, TypeError, KeyError, _BadBalance) as exc:
            return self._failed(
                provider_error_code(self.service, ProviderFailure.UNKNOWN_ERROR),
                f"unexpected balance document ({type(exc).__name__})",
            )
        self.last = Balance(
            self.service,
            used=used,
            total=total,
            remaining=max(total - used, 0.0),
            fetched_at=self._clock(),
            stale=False,
            error_code=None,
            expires_at=expires_at,
        )
        return self.last

    def _failed(self, error_code: str | None, reason: str) -> Balance:
        self.last = replace(self.last, stale=True, error_code=error_code)
        invalid_key = error_code == provider_error_code(self.service, ProviderFailure.INVALID_API_KEY)
        (_log.error if invalid_key else _log.warning)(
            "Quota balance poll failed",
            alert_priority="P0" if invalid_key else "P1",
            service=self.service,
            error_code=error_code,
            reason=reason,
            last_known_at=self.last.fetched_at,
        )
        return self.last

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadBalance(f"{name} is not a number")
    return float(value)


def _timestamp(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise _BadBalance(f"{name} is not a timestamp")
    moment = dt.datetime.fromisoformat(value)  # ValueError: not ISO 8601 (D-ID writes "2025-11-01T00:00:00.000Z")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class DidCreditsPoller(BalancePoller):
    """D-ID: ``GET /credits`` with ``Authorization: Basic <key>`` answers ``{"remaining": R, "total": T, "credits":
    [{"remaining": r, "expire_at": "...", ...}, ...]}``: one entry per credit pack, each with its own expiry."""

    service = "d-id"
    path = "/credits"
    credits_expire = True

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str | None,
        *,
        total: float | None = None,
        **options: Unpack[PollerOptions],
    ) -> None:
        super().__init__(base_url, api_key, **options)
        self._total = total

    def _headers(self, key: str) -> dict[str, str]:
        # D-ID's documented form: the key exactly as issued after "Basic " (it is already the credential pair).
        return {"Authorization": f"Basic {key}", "Accept": "application/json"}

    def _balance(self, document: Mapping) -> tuple[float, float]:
        remaining = _number(document.get("remaining"), "remaining")
        total = self._total if self._total is not None else _number(document.get("total"), "total")
        return max(total - remaining, 0.0), total

    def _expires_at(self, document: Mapping) -> dt.datetime | None:
        """The earliest ``expire_at`` of the packs with credits left (a spent pack's expiry costs nothing)."""
        packs = document.get("credits") or []
        if not isinstance(packs, list):
            raise _BadBalance("credits is not a list")
        expiries = [
            _timestamp(pack.get("expire_at"), "expire_at")
            for pack in packs
            if isinstance(pack, Mapping)
            and pack.get("expire_at") is not None
            and _number(pack.get("remaining", 0), "remaining") > 0
        ]
        return min(expiries, default=None)


class StabilityBalancePoller(BalancePoller):
    """Stability AI: ``GET /v1/user/balance`` with ``Authorization: Bearer <key>`` answers ``{"credits": n}``.

    There is no total: used = baseline - credits. Without a configured baseline, the highest balance seen is the
    baseline (seed it with the last stored total after a restart), so a top-up raises it.
    """

    service = "stability"
    path = "/v1/user/balance"

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str | None,
        *,
        baseline: float | None = None,
        **options: Unpack[PollerOptions],
    ) -> None:
        super().__init__(base_url, api_key, **options)
        self._configured_baseline = baseline
        self._seen_baseline: float | None = None

    def seed_baseline(self, total: float | None) -> None:
        """The baseline to start from when none is configured (e.g. the last stored total)."""
        if total is not None and self._configured_baseline is None:
            self._seen_baseline = max(self._seen_baseline or 0.0, total)

    def _headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "Accept": "application/json"}

    def _balance(self, document: Mapping) -> tuple[float, float]:
        credits = _number(document.get("credits"), "credits")
        if self._configured_baseline is not None:
            baseline = self._configured_baseline
        else:
            self._seen_baseline = max(self._seen_baseline or 0.0, credits)
            baseline = self._seen_baseline
        if baseline <= 0:
            raise _BadBalance("no credits bought: configure stability.baseline")
        return min(max(baseline - credits, 0.0), baseline), baseline

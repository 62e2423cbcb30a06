"""D-ID credits' expire_at: the nearest expiry of unspent packs, in the quota endpoint and as a gauge."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from examples.demo_backend.launcher import DEMO_SECRETS
from otel_monitor.monitor.quota.balances import DidCreditsPoller
from otel_monitor.monitor.quota.config import QuotaConfig
from otel_monitor.monitor.quota.metrics import QuotaMetricNames
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.quota.store import QuotaStore
from otel_monitor.monitor.quota.usage import BalanceQuotaSource
from otel_monitor.testing import in_memory_telemetry

NOW = dt.datetime(2025, 10, 20, 12, 0, tzinfo=dt.UTC)


def _pack(remaining: int, expire_at: object) -> dict:
    return {"owner_id": "o", "remaining": remaining, "total": 100, "expire_at": expire_at, "product_id": "p"}


def _document(*packs: dict) -> dict:
    return {"credits": list(packs), "remaining": sum(p["remaining"] for p in packs), "total": 100}


def _poller(document: object) -> DidCreditsPoller:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=document))
    client = httpx.AsyncClient(transport=transport)
    return DidCreditsPoller("http://d-id.test", "key-123456", client=client, clock=lambda: NOW)


@pytest.mark.parametrize(
    "document, expires_at, error_code",
    [
        # the earliest of the packs with credits left
        (
            _document(_pack(10, "2025-11-20T00:00:00.000Z"), _pack(5, "2025-10-25T08:30:00.000Z")),
            dt.datetime(2025, 10, 25, 8, 30, tzinfo=dt.UTC),
            None,
        ),
        # a spent pack's expiry costs nothing: the later unspent one counts
        (
            _document(_pack(0, "2025-10-21T00:00:00.000Z"), _pack(40, "2025-11-20T00:00:00.000Z")),
            dt.datetime(2025, 11, 20, tzinfo=dt.UTC),
            None,
        ),
        (_document(_pack(0, "2025-10-21T00:00:00.000Z")), None, None),  # everything spent: nothing expires
        ({"remaining": 40, "total": 100}, None, None),  # no packs listed: the balance still stands
        (_document(_pack(3, "2025-10-22T10:00:00+02:00")), dt.datetime(2025, 10, 22, 8, tzinfo=dt.UTC), None),
        (_document(_pack(3, "next tuesday")), None, "D_ID_UNKNOWN_ERROR"),
        (_document(_pack(3, 1761955200)), None, "D_ID_UNKNOWN_ERROR"),
        ({**_document(), "credits": {"remaining": 3}}, None, "D_ID_UNKNOWN_ERROR"),
    ],
)
@pytest.mark.asyncio
async def test_nearest_expiry_of_unspent_credits(document, expires_at, error_code):
    """expires_at is the earliest expire_at of the packs with credits left; a malformed one is UNKNOWN_ERROR."""
    poller = _poller(document)
    balance = await poller.poll()
    assert (balance.expires_at, balance.error_code, balance.stale) == (expires_at, error_code, error_code is not None)


@pytest.mark.asyncio
async def test_fake_did_lists_packs_with_expiry(fakes):
    """Against the fake D-ID: the current pack's expire_at, not last month's spent pack expiring sooner."""
    account = fakes.did_account
    shipped, account.expire_at = account.expire_at, "2030-01-05T06:07:08.000Z"
    poller = DidCreditsPoller(fakes.base_url("d-id"), DEMO_SECRETS["did_api_key"])
    try:
        balance = await poller.poll()
    finally:
        account.expire_at = shipped
        await poller.aclose()
    assert balance.expires_at == dt.datetime(2030, 1, 5, 6, 7, 8, tzinfo=dt.UTC)
    assert balance.remaining == account.remaining


@pytest.mark.asyncio
async def test_quota_shows_expiry_in_d_id_entry_and_gauge():
    """The d_id entry has expires_at; the gauge gives the seconds left to it, labelled with its day (UTC)."""
    captured = in_memory_telemetry()
    rules = QuotaConfig().reset_rules()
    source = BalanceQuotaSource(_poller(_document(_pack(40, "2025-10-23T18:00:00.000Z"))), rules["d-id"])
    service = QuotaService(QuotaStore(), {"d-id": source}, clock=lambda: NOW, meter_provider=captured.meter_provider)
    report = await service.report()
    assert report["quotas"]["d_id"]["expires_at"] == "2025-10-23T18:00:00Z"
    assert captured.collect().points(QuotaMetricNames.CREDITS_EXPIRY) == {
        (("expires_on", "2025-10-23"), ("service", "d-id")): (3 * 24 + 6) * 3600
    }

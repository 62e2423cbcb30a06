"""Balance polling against the fake D-ID and Stability servers: credits read, key errors coded, stale on failure."""

from __future__ import annotations

import logging

import httpx
import pytest

from examples.demo_backend.launcher import DEMO_SECRETS
from otel_monitor.monitor.quota.balances import DidCreditsPoller, StabilityBalancePoller


def _did(fakes, **options) -> DidCreditsPoller:
    return DidCreditsPoller(fakes.base_url("d-id"), DEMO_SECRETS["did_api_key"], **options)


def _stability(fakes, **options) -> StabilityBalancePoller:
    return StabilityBalancePoller(fakes.base_url("stability"), DEMO_SECRETS["stability_api_key"], **options)


@pytest.fixture
def restore_faults(fakes):
    """Puts both balance providers back in mode ok after the test."""
    yield
    for service in ("d-id", "stability"):
        fakes.set_fault(service, mode="ok")


@pytest.mark.asyncio
async def test_did_credits(fakes):
    """D-ID: used = total - remaining, as GET /credits reports them."""
    poller = _did(fakes)
    balance = await poller.poll()
    await poller.aclose()
    account = fakes.did_account
    assert (balance.total, balance.remaining) == (account.total, account.remaining)
    assert balance.used == account.total - account.remaining
    assert (balance.stale, balance.error_code, balance.fetched_at is not None) == (False, None, True)


@pytest.mark.asyncio
async def test_did_total_override(fakes):
    """A configured D-ID total replaces the one the API reports."""
    balance = await _did(fakes, total=500).poll()
    assert (balance.total, balance.used) == (500, 500 - fakes.did_account.remaining)


@pytest.mark.parametrize("baseline", [1000.0, None])
@pytest.mark.asyncio
async def test_stability_balance(fakes, baseline):
    """Stability: used = baseline - credits; without a baseline the balance seen first is the baseline."""
    balance = await _stability(fakes, baseline=baseline).poll()
    credits = fakes.stability_account.credits
    expected_total = baseline if baseline is not None else credits
    # remaining is total - used: equal to the credits up to float rounding (credits fall by 0.2 per image)
    assert (balance.total, balance.remaining) == (expected_total, pytest.approx(credits))
    assert balance.used == pytest.approx(expected_total - credits)
    assert (balance.stale, balance.error_code) == (False, None)


@pytest.mark.parametrize(
    "service, make, mode, error_code, level",
    [
        ("d-id", _did, "invalid_key", "D_ID_INVALID_API_KEY", logging.ERROR),
        ("stability", _stability, "invalid_key", "STABILITY_INVALID_API_KEY", logging.ERROR),
        ("d-id", _did, "server_error", "D_ID_SERVER_ERROR", logging.WARNING),
        ("stability", _stability, "rate_limit", "STABILITY_RATE_LIMITED", logging.WARNING),
        ("stability", _stability, "server_error", "STABILITY_SERVER_ERROR", logging.WARNING),
    ],
)
@pytest.mark.asyncio
async def test_poll_failure_keeps_last_value(fakes, restore_faults, caplog, service, make, mode, error_code, level):
    """A failed poll keeps the last balance, stale, with the provider's error code, logged; a good poll clears it."""
    poller = make(fakes)
    good = await poller.poll()
    fakes.set_fault(service, mode=mode)
    failed = await poller.poll()
    assert (failed.used, failed.total, failed.fetched_at) == (good.used, good.total, good.fetched_at)
    assert (failed.stale, failed.error_code) == (True, error_code)
    [record] = [r for r in caplog.records if r.message == "Quota balance poll failed"]
    assert (record.levelno, record.error_code, record.service) == (level, error_code, service)
    assert record.alert_priority == ("P0" if level == logging.ERROR else "P1")
    fakes.set_fault(service, mode="ok")
    assert (await poller.poll()).stale is False


@pytest.mark.parametrize(
    "make, key, error_code",
    [
        (DidCreditsPoller, "d3Jvbmc6a2V5", "D_ID_INVALID_API_KEY"),
        (StabilityBalancePoller, "sk-wrong-key-000000", "STABILITY_INVALID_API_KEY"),
    ],
)
@pytest.mark.asyncio
async def test_wrong_key(fakes, make, key, error_code):
    """A key the provider refuses (401) is reported as <SERVICE>_INVALID_API_KEY, with no value yet."""
    poller = make(fakes.base_url(make.service), key)
    balance = await poller.poll()
    assert (balance.used, balance.stale, balance.error_code) == (None, True, error_code)


@pytest.mark.parametrize("make", [DidCreditsPoller, StabilityBalancePoller])
@pytest.mark.asyncio
async def test_unreachable_provider(make):
    """A provider that does not answer gives <SERVICE>_CONNECTION_FAILED, never an exception."""
    from tools.devstack import free_port

    balance = await make(f"http://127.0.0.1:{free_port()}", "some-key-123456").poll()
    prefix = "D_ID" if make is DidCreditsPoller else "STABILITY"
    assert (balance.stale, balance.error_code) == (True, f"{prefix}_CONNECTION_FAILED")


@pytest.mark.asyncio
async def test_unconfigured_key_makes_no_request(fakes):
    """Without a key nothing is requested and the balance stays unknown (not stale)."""
    before = fakes.stats("d-id")["requests"].get("/credits", 0)
    balance = await DidCreditsPoller(fakes.base_url("d-id"), None).poll()
    assert (balance.used, balance.configured, balance.stale) == (None, False, False)
    assert fakes.stats("d-id")["requests"].get("/credits", 0) == before


@pytest.mark.asyncio
async def test_injected_client_and_not_a_balance():
    """An injected httpx.AsyncClient is used; a 200 that is not a balance document is UNKNOWN_ERROR."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=["not", "a", "balance"]))
    async with httpx.AsyncClient(transport=transport) as client:
        balance = await DidCreditsPoller("http://d-id.test", "key-123456", client=client).poll()
    assert balance.error_code == "D_ID_UNKNOWN_ERROR"

"""QuotaConfig: documented defaults, strict loading, and an error naming the field for each invalid case."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from otel_monitor.monitor.quota.config import QuotaConfig


def test_defaults():
    """Documented defaults: Gemini 1000/day UTC, YouTube 10,000/day Pacific, D-ID monthly, Stability none."""
    config = QuotaConfig()
    assert (config.gemini.total, config.gemini.reset.cycle, config.gemini.reset.timezone) == (1000, "daily", "UTC")
    assert config.gemini.reset.time == dt.time(0, 0)
    assert (config.youtube.total, config.youtube.reset.timezone) == (10_000, "America/Los_Angeles")
    assert (config.youtube.poll_interval_seconds, config.gemini.poll_interval_seconds) == (900, 3600)
    assert (config.d_id.total, config.d_id.reset.cycle, config.d_id.reset.day_of_month) == (None, "monthly", 1)
    assert (config.d_id.base_url, config.stability.base_url) == ("https://api.d-id.com", "https://api.stability.ai")
    assert (config.stability.reset.cycle, config.stability.baseline) == ("none", None)
    assert config.store_url == "sqlite:///otel-monitor.db"
    assert (config.thresholds.warning, config.thresholds.critical) == (0.8, 0.9)


def test_partial_section_keeps_other_defaults():
    """Overriding one key of a provider keeps that provider's other defaults."""
    config = QuotaConfig.model_validate(
        {"youtube": {"total": 20000}, "gemini": {"reset": {"timezone": "America/Los_Angeles"}}}
    )
    assert (config.youtube.total, config.youtube.reset.timezone) == (20000, "America/Los_Angeles")
    assert (config.gemini.total, config.gemini.reset.timezone) == (1000, "America/Los_Angeles")


@pytest.mark.parametrize(
    "data, field",
    [
        ({"gemini": {"total": 0}}, "gemini.total"),
        ({"youtube": {"poll_interval_seconds": -1}}, "youtube.poll_interval_seconds"),
        ({"youtube": {"reset": {"timezone": "Pacific/Nowhere"}}}, "youtube.reset.timezone"),
        ({"gemini": {"reset": {"cycle": "weekly"}}}, "gemini.reset.cycle"),
        ({"d_id": {"reset": {"cycle": "monthly", "day_of_month": 31}}}, "d_id.reset.day_of_month"),
        ({"d_id": {"base_url": "api.d-id.com"}}, "d_id.base_url"),
        ({"stability": {"baseline": -10}}, "stability.baseline"),
        ({"stability": {"api_secret": "x"}}, "stability.api_secret"),
        ({"store_url": "not a url"}, "store_url"),
        ({"redis_url": "http://127.0.0.1:6379"}, "redis_url"),
        ({"thresholds": {"warning": 0.9, "critical": 0.8}}, "thresholds"),
        ({"thresholds": {"critical": 1.5}}, "thresholds.critical"),
        ({"openai": {}}, "openai"),
    ],
)
def test_invalid(data, field):
    """Each invalid value or unknown key fails at load with an error naming the field."""
    with pytest.raises(ValidationError) as caught:
        QuotaConfig.model_validate(data)
    assert field in {".".join(str(p) for p in error["loc"]) for error in caught.value.errors()}


def test_api_keys_are_secret():
    """Balance API keys never show in the config's repr or dump."""
    config = QuotaConfig.model_validate({"d_id": {"api_key": "dXNlcjpzZWNyZXQ"}, "stability": {"api_key": "sk-123456"}})
    assert "dXNlcjpzZWNyZXQ" not in repr(config) and "sk-123456" not in str(config.model_dump())
    assert config.d_id.api_key.get_secret_value() == "dXNlcjpzZWNyZXQ"

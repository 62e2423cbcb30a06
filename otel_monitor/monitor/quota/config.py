"""Quota tracking's configuration: per-provider totals, reset schedules, polling, balance APIs, store, thresholds."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from otel_monitor._utc_time import known_time_zone
from otel_monitor.monitor.health.config import redis_url_scheme
from otel_monitor.monitor.quota.reset_schedule import ResetRule

__all__ = [
    "ResetSchedule",
    "QuotaThresholds",
    "GeminiModelLimits",
    "GeminiQuotaConfig",
    "YouTubeQuotaConfig",
    "DidQuotaConfig",
    "StabilityQuotaConfig",
    "QuotaConfig",
    "HOURLY",
    "QUARTER_HOURLY",
    "STALE_AFTER",
]

# Every quota is checked hourly, YouTube every 15 minutes (docs/requirements.md, Cadence); every quota at least
# every 15 minutes once 80 % of it is used, so a P1 (less than 10 % left) is seen within the hour it starts.
HOURLY = 3600.0
QUARTER_HOURLY = 900.0
# A polled balance older than this is re-read when the quota endpoint or a quota rule asks for it.
STALE_AFTER = 300.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResetSchedule(_Strict):
    """When a provider's quota starts over: ``daily`` / ``monthly`` (on ``day_of_month``) at ``time`` in ``timezone``,
    or ``none`` (pay-as-you-go)."""

    cycle: Literal["daily", "monthly", "none"] = "daily"
    time: dt.time = dt.time(0, 0)
    timezone: str = "UTC"
    # Up to 28, so every month has the day.
    day_of_month: int = Field(1, ge=1, le=28)

    _known_zone = field_validator("timezone")(known_time_zone)

    @field_validator("time")
    @classmethod
    def _naive_time(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("give the zone in 'timezone', not in the time")
        return value

    def rule(self) -> ResetRule:
        return ResetRule(self.cycle, self.time, ZoneInfo(self.timezone), self.day_of_month)


class QuotaThresholds(_Strict):
    """Fractions of the quota used at which a check logs "Quota warning" (P2) and "Quota critical" (P1)."""

    warning: float = Field(0.8, gt=0, lt=1)
    critical: float = Field(0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> QuotaThresholds:
        if self.warning >= self.critical:
            raise ValueError(f"warning ({self.warning}) must be below critical ({self.critical})")
        return self


class _ProviderQuota(_Strict):
    poll_interval_seconds: float = Field(HOURLY, gt=0, le=86400)


class _BalanceApi(_ProviderQuota):
    api_key: SecretStr | None = None
    base_url: str
    # Overrides the global ``stale_after_seconds`` for this provider.
    stale_after_seconds: float | None = Field(None, gt=0, le=86400)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class GeminiModelLimits(_Strict):
    """One Gemini model's rate limits, as Google's rate-limit table gives them for the project's tier: requests and
    input tokens per minute, requests per day (which resets with ``gemini.reset``)."""

    requests_per_minute: float = Field(gt=0)
    tokens_per_minute: float = Field(gt=0)
    requests_per_day: float = Field(gt=0)


# EXAMPLES, to check against Google's rate-limit page for the project's tier (they change): free-tier figures of
# gemini-2.5-flash (the demo's model: 10 requests and 250,000 input tokens a minute, 250 requests a day) and
# gemini-2.0-flash (15, 1,000,000, 1,500), and gemini-2.0-flash-lite.
EXAMPLE_GEMINI_MODEL_LIMITS = {
    "gemini-2.5-flash": GeminiModelLimits(requests_per_minute=10, tokens_per_minute=250_000, requests_per_day=250),
    "gemini-2.0-flash": GeminiModelLimits(requests_per_minute=15, tokens_per_minute=1_000_000, requests_per_day=1500),
    "gemini-2.0-flash-lite": GeminiModelLimits(
        requests_per_minute=30, tokens_per_minute=1_000_000, requests_per_day=1500
    ),
}


class GeminiQuotaConfig(_ProviderQuota):
    """Gemini requests a day, counted locally by the UsageCounter (Google has no API for what is left).

    ``total`` is the project's own daily cap over every model, reset per ``reset`` (00:00 UTC by default, as the
    requirements say). Google's limits per model (``models``) follow Google's schedule whatever ``reset`` says: per
    minute by the minute, per day at midnight Pacific, as the 429s' QuotaFailure and the alerts name them.
    """

    total: float = Field(1000, gt=0)
    reset: ResetSchedule = ResetSchedule(cycle="daily")
    # Per-model limits by model name (the name in the request URL); models called but not listed are shown with
    # their counts and no limit. The defaults are examples: set the figures of your tier.
    models: dict[str, GeminiModelLimits] = dict(EXAMPLE_GEMINI_MODEL_LIMITS)


class YouTubeQuotaConfig(_ProviderQuota):
    """YouTube Data API units a day (10,000 by default), counted locally; reset at midnight Pacific, DST-aware."""

    total: float = Field(10_000, gt=0)
    reset: ResetSchedule = ResetSchedule(cycle="daily", timezone="America/Los_Angeles")
    poll_interval_seconds: float = Field(QUARTER_HOURLY, gt=0, le=86400)


class DidQuotaConfig(_BalanceApi):
    """D-ID credits, read from ``GET {base_url}/credits`` (Basic auth); ``total`` overrides the total it reports."""

    base_url: str = "https://api.d-id.com"
    total: float | None = Field(None, gt=0)
    reset: ResetSchedule = ResetSchedule(cycle="monthly")


class StabilityQuotaConfig(_BalanceApi):
    """Stability AI credits, read from ``GET {base_url}/v1/user/balance`` (Bearer); used = baseline - balance.

    The API reports only the balance, so the total is ``baseline``: the credits bought. Without one, the highest
    balance seen (the first poll, or the last stored total) is the baseline.
    """

    base_url: str = "https://api.stability.ai"
    baseline: float | None = Field(None, gt=0)
    reset: ResetSchedule = ResetSchedule(cycle="none")


class QuotaConfig(_Strict):
    """Quota tracking of the four providers; the defaults follow docs/requirements.md and the providers' docs."""

    gemini: GeminiQuotaConfig = GeminiQuotaConfig()
    stability: StabilityQuotaConfig = StabilityQuotaConfig()
    d_id: DidQuotaConfig = DidQuotaConfig()
    youtube: YouTubeQuotaConfig = YouTubeQuotaConfig()
    # SQLAlchemy URL of the usage history: SQLite by default, PostgreSQL as postgresql+psycopg://user:pw@host/db.
    store_url: str = "sqlite:///otel-monitor.db"
    # The Redis the backend's UsageCounter, failure streaks and active users write to; None: Gemini and YouTube usage
    # is unknown, streak.* checks fail and the shared gauges (active users, consecutive failures) are not exported.
    redis_url: str | None = "redis://127.0.0.1:6379/0"
    usage_prefix: str = "otel_monitor:usage"
    thresholds: QuotaThresholds = QuotaThresholds()
    request_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # How far back the burn rate of the forecast looks (within the current window).
    forecast_lookback_hours: float = Field(3.0, gt=0, le=720)
    # Whether the service polls on its own (start()); off, polls happen only when asked.
    poll: bool = True
    # Poll interval of any provider once 80 % (the warning threshold) of its quota is used: at most 15 minutes.
    high_usage_poll_interval_seconds: float = Field(QUARTER_HOURLY, gt=0, le=QUARTER_HOURLY)
    # A polled balance (D-ID, Stability) older than this is re-read when the endpoint or a quota rule asks
    # (per provider: ``d_id.stale_after_seconds``); concurrent askers share one request.
    stale_after_seconds: float = Field(STALE_AFTER, gt=0, le=86400)
    # How long the quota endpoint waits for such a re-read; past it, the last balance answers with ``stale: true``.
    refresh_wait_seconds: float = Field(3.0, gt=0, le=120)
    # How often the gauges' views read the counted quotas and the providers' refusals anew (Redis only, no provider
    # request and no stored row), so a refusal reaches the quota rules within this, not at the next poll.
    refresh_interval_seconds: float = Field(30.0, gt=0, le=3600)

    @field_validator("store_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a SQLAlchemy database URL (e.g. 'sqlite:///otel-monitor.db', "
                "'postgresql+psycopg://user:password@host/db')"
            ) from None
        return value

    _redis_scheme = field_validator("redis_url")(redis_url_scheme)

    def provider(self, service: str) -> _ProviderQuota:
        """The section of a service key (``d-id`` or ``d_id``)."""
        return getattr(self, service.replace("-", "_"))

    def stale_after(self, service: str) -> float:
        """Seconds after which the polled balance of ``service`` is re-read on demand."""
        own = getattr(self.provider(service), "stale_after_seconds", None)
        return self.stale_after_seconds if own is None else own

    def reset_rules(self) -> dict[str, ResetRule]:
        """Reset rule per service key (``gemini``, ``stability``, ``d-id``, ``youtube``)."""
        return {
            "gemini": self.gemini.reset.rule(),
            "stability": self.stability.reset.rule(),
            "d-id": self.d_id.reset.rule(),
            "youtube": self.youtube.reset.rule(),
        }

"""What every channel's config has, whatever its type: the delivery timeout and how many deliveries run at once."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChannelSettings", "CHANNEL_NAME"]

# How a channel may be named in ``alerting.delivery.channels``.
CHANNEL_NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"


class ChannelSettings(BaseModel):
    """The base of each notifier's channel config (strict: unknown keys are refused; secrets are SecretStr)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A delivery that takes longer is abandoned and retried; it never holds up another channel.
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    # Deliveries in flight at once on this channel.
    max_concurrency: int = Field(4, ge=1, le=64)

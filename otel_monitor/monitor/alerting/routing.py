"""Where and when each priority's notifications go: the channels by name, the channels of each priority, and which
priorities wait for the P1 digest. The pipeline routes by these, and nothing else decides a route."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from otel_monitor.monitor.alerting.delivery.retry import RetryPolicy
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.notifiers import CHANNEL_NAME, ChannelConfig

__all__ = ["DeliveryConfig", "DIGESTED", "AT_ONCE", "LOGGED_AS_THEY_HAPPEN"]

# Transitions of these priorities wait for their period's digest; the others are queued for their channels at once.
DIGESTED = frozenset({Priority.P1})
AT_ONCE = frozenset(Priority) - DIGESTED
# Transitions of these priorities are also logged at WARNING the moment they happen, whatever their routing: their
# channels hear of them in a digest, or in the daily summary's email.
LOGGED_AS_THEY_HAPPEN = frozenset({Priority.P1, Priority.P2})


class DeliveryConfig(BaseModel):
    """``channels`` by name, and ``routing``: the channel names each priority goes to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[Annotated[str, Field(pattern=CHANNEL_NAME)], ChannelConfig] = Field(default_factory=dict)
    routing: dict[Priority, tuple[str, ...]] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()

    @model_validator(mode="after")
    def _routing_names_known_channels(self) -> DeliveryConfig:
        for priority, names in self.routing.items():
            for index, name in enumerate(names):
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none"
                    raise ValueError(f"routing.{priority.value}[{index}]: unknown channel {name!r} (known: {known})")
        return self

    def channels_for(self, priority: Priority) -> tuple[str, ...]:
        return self.routing.get(priority, ())

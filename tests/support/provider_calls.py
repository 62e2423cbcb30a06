"""A provider-call recorder on in-memory telemetry, shared by the tests of the provider wrappers."""

from __future__ import annotations

from otel_monitor.instrument.external_calls import ExternalCallRecorder
from otel_monitor.instrument.failure_streaks import LocalFailureStreaks
from otel_monitor.redaction.scrubber import SecretScrubber
from otel_monitor.testing import in_memory_telemetry

__all__ = ["Telemetry"]


class Telemetry:
    """A recorder on in-memory providers (``captured``), its spans scrubbed as in production (by ``scrubber``)."""

    def __init__(self, streaks=None, scrubber: SecretScrubber | None = None):
        self.scrubber = scrubber or SecretScrubber()
        self.captured = in_memory_telemetry(self.scrubber)
        self.tracer_provider = self.captured.tracer_provider
        self.meter_provider = self.captured.meter_provider
        self.recorder = ExternalCallRecorder(
            self.tracer_provider, self.meter_provider, streaks or LocalFailureStreaks()
        )

    def calls(self, service: str) -> dict[tuple[str, str], int]:
        """{(outcome, error_code): calls} of one service: the duration histogram's count joined with the errors."""
        collection = self.captured.collect()
        outcomes = {
            dict(k)["outcome"]: v
            for k, v in collection.points("external_api.call.duration").items()
            if dict(k)["service"] == service
        }
        codes = [
            dict(k)["error_code"] for k in collection.points("external_api.errors") if dict(k)["service"] == service
        ]
        assert len(codes) <= 1, codes
        return {(outcome, codes[0] if outcome != "success" else ""): n for outcome, n in outcomes.items()}

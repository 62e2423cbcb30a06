"""A provider call costs its quota units whatever its outcome: YouTube charges refused and failed requests too."""

from __future__ import annotations

import pytest

from otel_monitor.instrument.classification import classify_response
from otel_monitor.instrument.external_calls import ExternalCallRecorder
from otel_monitor.instrument.usage_counter import DEFAULT_UNIT_COSTS
from otel_monitor.testing import in_memory_telemetry


class RecordedUsage:
    """The UsageCounter interface the recorder calls, keeping what it was told instead of writing Redis."""

    def __init__(self) -> None:
        self.units: list[tuple[str, float]] = []
        self.refusals: list[str] = []

    def cost(self, service: str, operation: str) -> float:
        table = DEFAULT_UNIT_COSTS.get(service, {})
        return float(table.get(operation, table.get("*", 0)))

    def record(self, service: str, units: float) -> None:
        self.units.append((service, units))

    def record_refusal(self, service: str) -> None:
        self.refusals.append(service)


UPLOAD_LIMIT = b'{"error":{"code":400,"errors":[{"reason":"uploadLimitExceeded","domain":"youtube.video"}]}}'
QUOTA = b'{"error":{"code":403,"errors":[{"reason":"quotaExceeded","domain":"youtube.quota"}]}}'


@pytest.mark.parametrize(
    "status,body,refused",
    [
        (200, b"{}", []),
        (400, UPLOAD_LIMIT, []),  # the channel's upload cap is not the project's quota: no refusal recorded
        (403, QUOTA, ["youtube"]),
        (503, b'{"error":{"code":503,"errors":[{"reason":"backendError"}]}}', []),
    ],
)
def test_videos_insert_costs_its_units_whatever_the_outcome(status, body, refused):
    """An upload (videos.insert) costs its units when it succeeds, when YouTube refuses it and when it fails."""
    usage = RecordedUsage()
    captured = in_memory_telemetry()
    recorder = ExternalCallRecorder(captured.tracer_provider, captured.meter_provider, usage=usage)  # type: ignore[arg-type]
    with recorder.track("youtube", "videos.insert") as call:
        call.record_attempt(classify_response("youtube", status, body))
    assert usage.units == [("youtube", DEFAULT_UNIT_COSTS["youtube"]["videos.insert"])]
    assert usage.refusals == refused

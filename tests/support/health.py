"""Health settings for tests that follow a dependency up and down, not its latency."""

from __future__ import annotations

# A round trip on a host loaded by the rest of the suite may pass the shipped degraded thresholds (500 ms and 100 ms);
# these tests judge up or down only. The latency thresholds themselves are tested on stub checks (tests/unit).
LATENCY_NOT_JUDGED = {"database_latency_degraded_ms": 60_000, "redis_latency_degraded_ms": 60_000}

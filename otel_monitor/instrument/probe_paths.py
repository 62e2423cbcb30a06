"""The probe paths: the monitor's health endpoints, and the paths kept out of tracing because probes poll them hard."""

from __future__ import annotations

__all__ = ["HEALTH_PATH", "LIVENESS_PATH", "BACKEND_LIVENESS_PATH", "PROBE_PATHS"]

HEALTH_PATH = "/api/v1/system/health"
LIVENESS_PATH = "/livez"
# The conventional liveness path of an instrumented backend (the monitor serves LIVENESS_PATH).
BACKEND_LIVENESS_PATH = "/healthz"
PROBE_PATHS = (HEALTH_PATH, BACKEND_LIVENESS_PATH, LIVENESS_PATH)

"""Pure decisions on check results: the overall status, HTTP codes and the IETF health+json rendering."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "HEALTHY",
    "DEGRADED",
    "UNHEALTHY",
    "STATUSES",
    "HEALTH_JSON_MEDIA_TYPE",
    "worst_status",
    "aggregate_status",
    "http_status_code",
    "ietf_status",
    "render_health_json",
]

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
# In order of severity; the index is the value of the status gauge.
STATUSES = (HEALTHY, DEGRADED, UNHEALTHY)

HEALTH_JSON_MEDIA_TYPE = "application/health+json"

_IETF = {HEALTHY: "pass", DEGRADED: "warn", UNHEALTHY: "fail"}

# How each check's fields render as IETF "component:measurement" entries: (measurement, field, unit).
_MEASUREMENTS: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "database": (("responseTime", "latency_ms", "ms"),),
    "redis": (("responseTime", "latency_ms", "ms"),),
    "celery": (("workers", "active_workers", "workers"), ("queueLength", "pending_tasks", "tasks")),
    "disk": (("utilization", "percentage_used", "percent"), ("freeSpace", "free_gb", "GiB")),
    "ffmpeg": (("version", "version", None),),
}
_COMPONENT_TYPES = {"database": "datastore", "redis": "datastore", "disk": "system"}


def worst_status(*statuses: str) -> str:
    """The most severe of the given statuses; an unknown status counts as unhealthy, none at all as healthy."""
    worst = 0
    for status in statuses:
        worst = max(worst, STATUSES.index(status) if status in STATUSES else len(STATUSES) - 1)
    return STATUSES[worst]


def aggregate_status(results: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> str:
    """Unhealthy if any check is, else degraded if any is, else healthy (the report's overall status)."""
    values = results.values() if isinstance(results, Mapping) else results
    return worst_status(*(result.get("status", UNHEALTHY) for result in values))


def http_status_code(status: str) -> int:
    """200 while the backend serves (healthy or degraded), 503 when it is unhealthy."""
    return 503 if worst_status(status) == UNHEALTHY else 200


def ietf_status(status: str) -> str:
    """healthy/degraded/unhealthy as the IETF draft's pass/warn/fail."""
    return _IETF[worst_status(status)]


def render_health_json(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report in the IETF health-check draft format (draft-inadarei-api-health-check, application/health+json).

    Each check becomes one or more ``"name:measurement"`` entries; a failed check's ``error`` is its ``output``.
    """
    time = report.get("timestamp")
    checks: dict[str, list[dict[str, Any]]] = {}
    for name, result in report.get("checks", {}).items():
        status = ietf_status(result.get("status", UNHEALTHY))
        base: dict[str, Any] = {"componentType": _COMPONENT_TYPES.get(name, "component"), "status": status}
        if time is not None:
            base["time"] = time
        if result.get("error"):
            base["output"] = result["error"]
        measurements = _MEASUREMENTS.get(name, ())
        if not measurements:
            checks[name] = [base]
        for measurement, field, unit in measurements:
            entry = {**base, "observedValue": result.get(field)}
            if unit is not None:
                entry["observedUnit"] = unit
            checks[f"{name}:{measurement}"] = [entry]
    return {"status": ietf_status(report.get("status", UNHEALTHY)), "checks": checks}

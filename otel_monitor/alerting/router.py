"""``GET /api/v1/alerts``: the evaluator's current alerts, filtered by priority, service and state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import APIRouter, Query

from otel_monitor.alerting.model import Alert, AlertState, Priority

__all__ = ["ALERTS_PATH", "build_alerts_router", "alert_json", "select_alerts"]

ALERTS_PATH = "/api/v1/alerts"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def alert_json(alert: Alert) -> dict[str, object]:
    """One alert as the API shows it."""
    return {
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "priority": alert.priority.value,
        "state": alert.state.value,
        "error_code": alert.error_code,
        "service": alert.service,
        "summary": alert.summary,
        "action_required": alert.action_required,
        "runbook": alert.runbook,
        "starts_at": _iso(alert.starts_at),
        "ends_at": _iso(alert.ends_at),
        "trace_id": alert.trace_id,
        "jaeger_url": alert.jaeger_url,
    }


def select_alerts(alerts: Iterable[Alert], *, priority: Priority | None = None, service: str | None = None,
                  state: AlertState | None = None) -> list[Alert]:
    """The alerts matching every filter given, most urgent and oldest first."""
    chosen = [a for a in alerts
              if (priority is None or a.priority is priority) and (service is None or a.service == service)
              and (state is None or a.state is state)]
    return sorted(chosen, key=lambda a: (a.priority.value, a.starts_at or _EPOCH))


def build_alerts_router(current_alerts: Callable[[], Iterable[Alert]]) -> APIRouter:
    """The alerts router over ``current_alerts`` (the evaluator's); bad filter values get FastAPI's 422 JSON."""
    router = APIRouter(tags=["alerts"])

    @router.get(ALERTS_PATH)
    async def get_alerts(
        priority: Annotated[Priority | None, Query(description="only this priority")] = None,
        service: Annotated[str | None, Query(description="only alerts of this service label")] = None,
        state: Annotated[AlertState | None, Query(description="only alerts in this state")] = None,
    ) -> dict[str, object]:
        alerts = select_alerts(current_alerts(), priority=priority, service=service, state=state)
        return {"alerts": [alert_json(alert) for alert in alerts]}

    return router

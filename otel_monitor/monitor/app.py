"""The monitor service's FastAPI app: health, quota and alerts routers over services started with the app, behind the
API token authorization of the config's `auth` section."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from opentelemetry.metrics import MeterProvider

from otel_monitor import __version__
from otel_monitor.instrument.probe_paths import HEALTH_PATH, PROBE_PATHS
from otel_monitor.monitor.alerting.model import Rule
from otel_monitor.monitor.alerting.notifications_router import build_notifications_router
from otel_monitor.monitor.alerting.response_router import build_response_router
from otel_monitor.monitor.alerting.router import ALERTS_WS_PATH, build_alerts_router
from otel_monitor.monitor.alerting.service import AlertingService
from otel_monitor.monitor.alerting.silences.router import build_silences_router
from otel_monitor.monitor.api_errors import document_unparsable_bodies
from otel_monitor.monitor.auth.middleware import install_auth
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.health.router import HealthResponder, ReplicaStatus, build_health_router
from otel_monitor.monitor.health.service import HealthService
from otel_monitor.monitor.leadership import AlwaysLeader
from otel_monitor.monitor.quota.router import build_quota_router
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.shared_gauges import SharedGauges
from otel_monitor.monitor.status.router import build_status_router
from otel_monitor.monitor.status.service import StatusService

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from otel_monitor.instrument.telemetry import Telemetry

__all__ = ["create_app"]


_PROBE_PATHS = frozenset(PROBE_PATHS)


def _is_probe(scope: Scope) -> bool:
    return scope.get("path") in _PROBE_PATHS


class _MonitorApp(FastAPI):
    """FastAPI, with the GETs of the health endpoint answered first, from the pre-rendered report: load balancers
    and uptime checkers poll it hard, and it is open to anyone and excluded from telemetry, so routing, parameter
    parsing, the middlewares and the telemetry wrapper would be all of its cost."""

    health_responder: HealthResponder | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.health_responder is not None
            and scope["type"] == "http"
            and scope["path"] == HEALTH_PATH
            and scope["method"] == "GET"
        ):
            await self.health_responder.answer(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    config: MonitorConfig,
    *,
    meter_provider: MeterProvider | None = None,
    health: HealthService | None = None,
    quota: QuotaService | None = None,
    telemetry: Telemetry | None = None,
    rules: Sequence[Rule] | None = None,
    alerting: AlertingService | None = None,
) -> FastAPI:
    """The app; the services are built from the config unless injected (tests). ``telemetry`` (the process's
    own) is shut down with the app: uvicorn re-raises SIGTERM after its graceful shutdown, so atexit never runs.
    With ``alerting.enabled`` and ``rules`` (or an injected ``alerting``: a service on a test's clock), the
    alerting service runs with the app; the alerts endpoint answers
    either way (no alerts while alerting is off). With ``quota.redis_url``, the values the backend's processes share
    there (consecutive failures, active users) are exported as gauges on ``meter_provider``."""
    health = health or HealthService.from_config(config.health, meter_provider=meter_provider)
    quota = quota or QuotaService.from_config(config.quota, meter_provider=meter_provider)
    shared_gauges = (
        SharedGauges.from_url(config.quota.redis_url, meter_provider=meter_provider, budgets=config.budgets)
        if config.quota.redis_url
        else None
    )
    if alerting is None and config.alerting.enabled and rules:
        alerting = AlertingService.from_config(config, rules, health, quota, meter_provider=meter_provider)
    status = StatusService.from_config(config, health, quota, alerting)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await health.start()
        await quota.start()
        if alerting is not None:
            await alerting.start()
        await status.start()
        # Everything loaded so far lives as long as the process: keep it out of the collector's full passes,
        # which otherwise stall the event loop for tens of milliseconds under load.
        gc.freeze()
        try:
            yield
        finally:
            await status.stop()
            if alerting is not None:
                await alerting.stop()
            await quota.stop()
            await health.stop()
            if telemetry is not None:
                await asyncio.to_thread(telemetry.shutdown)  # its last export still reads the shared gauges
            if shared_gauges is not None:
                shared_gauges.close()

    # FastAPI's native telemetry would trace every probe of the health endpoints (load balancers poll them
    # hard): those requests are excluded, the rest of the API is traced.
    app = _MonitorApp(title="otel-monitor", version=__version__, lifespan=lifespan, telemetry={"exclude": _is_probe})
    leadership = alerting.leadership if alerting is not None else AlwaysLeader(config.ha.replica_id)
    app.health_responder = HealthResponder(
        health, lambda: ReplicaStatus(id=leadership.replica_id, leader=leadership.is_leader, ha=leadership.enabled)
    )
    app.include_router(build_health_router(health, responder=app.health_responder))
    app.include_router(build_quota_router(quota))
    app.include_router(
        build_alerts_router(
            alerting.history, alerting.incidents, standing_acks=alerting.standing_acks, status_hub=status.hub
        )
        if alerting is not None
        else build_alerts_router(status_hub=status.hub)
    )
    app.include_router(build_status_router(status))
    app.include_router(build_response_router())
    app.include_router(build_notifications_router())
    app.include_router(build_silences_router())
    document_unparsable_bodies(app)
    # every route, by its method; open paths and no-token mode in auth/
    # whether the API asks for tokens (the alert page's form then has a token field)
    app.state.tokens_required = install_auth(app, config.auth, status_websocket_path=ALERTS_WS_PATH)
    app.state.health = health
    app.state.quota = quota
    app.state.alerting = alerting
    app.state.status = status
    return app

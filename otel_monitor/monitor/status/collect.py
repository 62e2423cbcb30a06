"""Collects the status from the monitor's services: health checks, providers (Prometheus and quotas), alerts,
incidents, silences and the stored uptime; pure helpers turn each source's answer into the model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.providers import ProviderRegistry
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.monitor.quota.service import QuotaView
from otel_monitor.monitor.status.model import (
    DEGRADED,
    DOWN,
    UNKNOWN,
    UP,
    ActiveAlert,
    Component,
    Provider,
    ProviderMetrics,
    QuotaBar,
    Spend,
    State,
    StatusSummary,
    worst_state,
)
from otel_monitor.monitor.status.provider_metrics import ProviderMetricsReader
from otel_monitor.monitor.status.uptime import UPTIME_DAYS, Counts, UptimeCounts, UptimeStore, uptime_days

__all__ = [
    "StatusCollector",
    "check_state",
    "provider_state",
    "quota_bar",
    "active_alert",
    "overall_state",
    "provider_component",
    "outside_component",
    "no_silences",
]

_log = StructuredLogger("otel_monitor.status")
_CHECK_STATES: dict[str, State] = {"healthy": UP, "degraded": DEGRADED, "unhealthy": DOWN}
# A provider's calls in the hour: below these success rates it is degraded, then down.
_DEGRADED_BELOW, _DOWN_BELOW = 0.95, 0.5
_QUOTA_STATES: dict[str, State] = {"exceeded": DOWN, "critical": DEGRADED}

Silences = Callable[[], Awaitable[list[dict[str, Any]]]]
OpenIncidents = Callable[[], Awaitable[list[dict[str, Any]]]]


async def no_silences() -> list[dict[str, Any]]:
    """No silences (the default until silences are wired)."""
    return []


def provider_component(key: str) -> str:
    """The provider's name in the uptime history (checks keep their own names)."""
    return f"provider:{key}"


def outside_component(service: str) -> str:
    """A service probed from outside (the blackbox exporter), as a component of the page and its uptime history."""
    return f"outside:{service}"


def check_state(result: Mapping[str, Any]) -> State:
    """healthy/degraded/unhealthy of a health check result as up/degraded/down."""
    return _CHECK_STATES.get(str(result.get("status")), DOWN)


def provider_state(metrics: ProviderMetrics | None, quota: QuotaView | None) -> State:
    """The worse of its calls' success rate and its quota; unknown with neither traffic nor a quota reading."""
    states: list[str] = []
    if metrics is not None and metrics.available and metrics.success_rate is not None:
        rate = metrics.success_rate
        states.append(DOWN if rate < _DOWN_BELOW else DEGRADED if rate < _DEGRADED_BELOW else UP)
    if quota is not None and quota.percentage is not None:
        states.append(_QUOTA_STATES.get(quota.status, UP))
    return worst_state(*states) if states else UNKNOWN


def quota_bar(view: QuotaView, now: dt.datetime) -> QuotaBar:
    """The quota as the page draws it; the forecast is the quota service's (usage rate extrapolated to the
    reset: None when it lasts until then)."""
    reset_in = None if view.reset_date is None else max(0.0, (view.reset_date - now).total_seconds())
    return QuotaBar(
        used=view.used,
        total=view.total,
        unit=view.unit,
        percentage=view.percentage,
        status=view.status,
        reset_at=view.reset_date,
        reset_in_seconds=reset_in,
        forecast_exhausted_at=view.forecast_exhausted_at,
    )


def active_alert(alert: Alert) -> ActiveAlert:
    return ActiveAlert(
        fingerprint=alert.fingerprint,
        rule=alert.rule,
        priority=alert.priority.value,
        state=alert.state.value,
        service=alert.service,
        summary=alert.summary,
        starts_at=alert.starts_at,
        jaeger_url=alert.jaeger_url,
        logs_url=alert.logs_url,
    )


def overall_state(
    components: Iterable[Component], providers: Iterable[Provider], alerts: Iterable[ActiveAlert]
) -> State:
    """The worst component or provider; down while a P0 fires."""
    p0_firing = any(a.priority == Priority.P0.value and a.state == AlertState.FIRING.value for a in alerts)
    return worst_state(*(c.state for c in components), *(p.state for p in providers), *([DOWN] if p0_firing else []))


class StatusCollector:
    """Everything the page shows. The cheap parts (``components``, ``providers`` from the cached metrics,
    ``alerts``) are read in memory; ``summary`` adds the incidents, silences and stored uptime."""

    def __init__(
        self,
        *,
        health_report: Callable[[], Mapping[str, Any] | None],
        quota_views: Callable[[], Sequence[QuotaView]],
        registry: ProviderRegistry,
        metrics_reader: ProviderMetricsReader | None = None,
        active_alerts: Callable[[], Sequence[Alert]] = list,
        open_incidents: OpenIncidents | None = None,
        silences: Silences = no_silences,
        uptime_store: UptimeStore | None = None,
        uptime_counts: UptimeCounts | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        spend: Callable[[dt.datetime], Awaitable[list[Spend]]] | None = None,
    ) -> None:
        self._health_report = health_report
        self._spend = spend
        self._quota_views = quota_views
        self.registry = registry
        self._metrics_reader = metrics_reader
        self._active_alerts = active_alerts
        self._open_incidents = open_incidents
        self.silences = silences
        self._uptime_store = uptime_store
        self.uptime_counts = uptime_counts or UptimeCounts()
        self._clock = clock
        self.provider_metrics: dict[str, ProviderMetrics] = {}
        # Each service probed from outside -> its state (unknown while Prometheus does not answer).
        self.outside_probes: dict[str, State] = {}
        # The quota views of the last refresh: what the live updates compare (the page reads them anew).
        self.quota_views: list[QuotaView] = []

    @property
    def clock(self) -> Callable[[], dt.datetime]:
        return self._clock

    async def aclose(self) -> None:
        if self._metrics_reader is not None:
            await self._metrics_reader.aclose()

    async def refresh_provider_metrics(self) -> dict[str, ProviderMetrics]:
        """Reads the providers' hour from Prometheus (unavailable without a reader) and their quotas, and keeps them
        for the page."""
        keys = [provider.key for provider in self.registry]
        self.quota_views = list(self._quota_views())
        if self._metrics_reader is None:
            self.provider_metrics = {key: ProviderMetrics(available=False) for key in keys}
        else:
            self.provider_metrics = await self._metrics_reader.read(keys)
            probes = await self._metrics_reader.outside_probes()
            if probes is None:
                self.outside_probes = dict.fromkeys(self.outside_probes, UNKNOWN)
            else:
                self.outside_probes = {service: UP if up else DOWN for service, up in probes.items()}
        return self.provider_metrics

    def components(self) -> list[Component]:
        report = self._health_report() or {}
        return [
            Component(
                name=name,
                state=check_state(result),
                latency_ms=result.get("latency_ms"),
                error=result.get("error"),
            )
            for name, result in report.get("checks", {}).items()
        ] + [Component(name=outside_component(service), state=state) for service, state in self.outside_probes.items()]

    def providers(self, now: dt.datetime, quota_views: Sequence[QuotaView] | None = None) -> list[Provider]:
        """Each provider of the registry with its kept metrics and ``quota_views`` (default: the kept ones)."""
        views = {view.service: view for view in (self.quota_views if quota_views is None else quota_views)}
        providers = []
        for registered in self.registry:
            metrics = self.provider_metrics.get(registered.key, ProviderMetrics(available=False))
            view = views.get(registered.key)
            providers.append(
                Provider(
                    key=registered.key,
                    name=registered.display_name,
                    state=provider_state(metrics, view),
                    metrics=metrics,
                    quota=quota_bar(view, now) if view is not None else None,
                )
            )
        return providers

    def alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts, most urgent and oldest first."""
        alerts = sorted(
            self._active_alerts(),
            key=lambda a: (a.priority.value, a.starts_at or dt.datetime.min.replace(tzinfo=dt.UTC)),
        )
        return [active_alert(alert) for alert in alerts if alert.state is not AlertState.RESOLVED]

    async def summary(self) -> StatusSummary:
        now = self._clock()
        if not self.provider_metrics:
            await self.refresh_provider_metrics()
        components, providers, alerts = self.components(), self.providers(now, self._quota_views()), self.alerts()
        uptime = await self._uptime(now.date() - dt.timedelta(days=UPTIME_DAYS - 1))
        for component in components:
            component.uptime = uptime_days(uptime, component.name, now.date())
        for provider in providers:
            provider.uptime = uptime_days(uptime, provider_component(provider.key), now.date())
        return StatusSummary(
            state=overall_state(components, providers, alerts),
            generated_at=now,
            components=components,
            providers=providers,
            alerts=alerts,
            incidents=await self._read("incidents", self._open_incidents),
            silences=await self._read("silences", self.silences),
            spend=await self._read_spend(now),
        )

    async def _read_spend(self, now: dt.datetime) -> list[Spend] | None:
        if self._spend is None:
            return None
        try:
            return await self._spend(now)
        except Exception as exc:  # the page shows the rest
            _log.warning("Status page could not read the spend", error=repr(exc)[:300])
            return None

    async def _uptime(self, first_day: dt.date) -> Counts:
        """Stored days plus the counts not written yet; the counts alone when the store cannot be read."""
        counts = self.uptime_counts.peek()
        if self._uptime_store is not None:
            try:
                stored = await self._uptime_store.executor.run(self._uptime_store.since, first_day)
            except Exception as exc:
                _log.warning("Uptime history unreadable; showing this process's counts", error=repr(exc)[:300])
                stored = {}
            for key, (up, total) in stored.items():
                current = counts.setdefault(key, [0, 0])
                current[0] += up
                current[1] += total
        return counts

    @staticmethod
    async def _read(what: str, source: Callable[[], Awaitable[list[dict[str, Any]]]] | None) -> list[dict[str, Any]]:
        if source is None:
            return []
        try:
            return list(await source())
        except Exception as exc:  # the page shows the rest
            _log.warning(f"Status page could not read its {what}", error=repr(exc)[:300])
            return []

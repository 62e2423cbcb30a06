"""Each provider's last hour from the monitor's Prometheus: calls, success rate, P90 latency and its sparkline; and
the API's uptime probes from outside (the blackbox exporter's probe_success)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from otel_monitor.instrument.metrics import Outcome, PromNames
from otel_monitor.monitor.status.model import ProviderMetrics

__all__ = ["ProviderMetricsReader", "SPARKLINE_POINTS", "OUTSIDE_PROBE_JOB"]

_WINDOW = "1h"
SPARKLINE_POINTS = 12  # one P90 per 5 minutes of the hour
_SPARKLINE_STEP_SECONDS = 300
_CALLS = f"sum by (service) (increase({PromNames.CALL_COUNT}[{_WINDOW}]))"
_SUCCESSES = f'sum by (service) (increase({PromNames.CALL_COUNT}{{outcome="{Outcome.SUCCESS}"}}[{_WINDOW}]))'
_BUCKETS = PromNames.CALL_DURATION + "_bucket"
# The Prometheus job whose targets the blackbox exporter probes from outside (config/prometheus.yml); a service is
# up from outside while every one of its probed URLs answers.
OUTSIDE_PROBE_JOB = "blackbox-http"
_OUTSIDE_PROBES = f'min by (service) (probe_success{{job="{OUTSIDE_PROBE_JOB}"}})'


def _p90(window: str) -> str:
    return f"histogram_quantile(0.9, sum by (service, le) (rate({_BUCKETS}[{window}])))"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


class ProviderMetricsReader:
    """Reads ``prometheus_url``'s HTTP API, each query bounded by ``timeout`` seconds; Prometheus away or answering
    an error makes every provider's metrics unavailable, never an exception."""

    def __init__(
        self,
        prometheus_url: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = prometheus_url.rstrip("/")
        self._client = http_client or httpx.AsyncClient()
        self._owns_client = http_client is None
        self._timeout = timeout
        self._clock = clock

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def read(self, services: Iterable[str]) -> dict[str, ProviderMetrics]:
        """The metrics of each service key: no traffic in the hour leaves calls 0 and the rates None."""
        keys = list(services)
        now = self._clock()
        try:
            calls, successes, p90, sparkline = await asyncio.gather(
                self._instant(_CALLS),
                self._instant(_SUCCESSES),
                self._instant(_p90(_WINDOW)),
                self._range(_p90("5m"), now - _SPARKLINE_STEP_SECONDS * (SPARKLINE_POINTS - 1), now),
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return {key: ProviderMetrics(available=False) for key in keys}
        found = {}
        for key in keys:
            count = calls.get(key) or 0.0
            found[key] = ProviderMetrics(
                available=True,
                calls=count,
                success_rate=(successes.get(key, 0.0) or 0.0) / count if count > 0 else None,
                p90_seconds=p90.get(key) if count > 0 else None,
                sparkline=sparkline.get(key, [None] * SPARKLINE_POINTS),
            )
        return found

    async def outside_probes(self) -> dict[str, bool] | None:
        """Each service probed from outside: True while all its probes pass; None: Prometheus did not answer."""
        try:
            found = await self._instant(_OUTSIDE_PROBES)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None
        return {service: value == 1 for service, value in found.items() if service and value is not None}

    async def _get(self, path: str, params: dict[str, str | float]) -> list[dict[str, Any]]:
        response = await self._client.get(self._base + path, params=params, timeout=self._timeout)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(f"Prometheus answered {body.get('status')!r}")
        return list(body["data"]["result"])

    async def _instant(self, query: str) -> dict[str, float | None]:
        result = await self._get("/api/v1/query", {"query": query})
        return {item["metric"].get("service", ""): _number(item["value"][1]) for item in result}

    async def _range(self, query: str, start: float, end: float) -> dict[str, list[float | None]]:
        params: dict[str, str | float] = {"query": query, "start": start, "end": end, "step": _SPARKLINE_STEP_SECONDS}
        result = await self._get("/api/v1/query_range", params)
        series: dict[str, list[float | None]] = {}
        for item in result:
            points: list[float | None] = [None] * SPARKLINE_POINTS
            for at, value in item["values"]:
                index = round((float(at) - start) / _SPARKLINE_STEP_SECONDS)
                if 0 <= index < SPARKLINE_POINTS:
                    points[index] = _number(value)
            series[item["metric"].get("service", "")] = points
        return series

"""Where a rule's condition is evaluated: Prometheus (PromQL instant queries) or the service's own checks."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import httpx

from otel_monitor.instrument.failure_streaks import FailureStreaks
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.monitor.alerting.model import Rule
from otel_monitor.monitor.health.status import UNHEALTHY
from otel_monitor.monitor.quota.status import CRITICAL, EXCEEDED

if TYPE_CHECKING:
    from otel_monitor.monitor.quota.service import QuotaView

__all__ = [
    "Sample",
    "Source",
    "SourceError",
    "SourceUnavailable",
    "SourceBusy",
    "DEFAULT_MAX_CONCURRENT_QUERIES",
    "PrometheusSource",
    "CheckThresholds",
    "CheckSource",
    "HealthReports",
    "QuotaViews",
    "streak_trace_lookup",
]

# Labels of the scrape target and the OpenTelemetry scope, not of the condition: kept out of fingerprints.
_TARGET_LABELS = frozenset(
    {
        "__name__",
        "job",
        "instance",
        "exported_job",
        "exported_instance",
        "otel_scope_name",
        "otel_scope_version",
        "otel_scope_schema_url",
    }
)


class Sample(NamedTuple):
    """One instance of a condition that holds: its labels, its value, and a failing trace when known."""

    labels: dict[str, str]
    value: float | None = None
    trace_id: str | None = None


class SourceError(Exception):
    """The condition could not be evaluated this time (bad query, unknown check): its state is unknown."""


class SourceUnavailable(SourceError):
    """The backend behind a source is down (unreachable, 5xx, timeout); ``backend`` names it."""

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(f"{backend}: {message}")
        self.backend = backend


class SourceBusy(SourceError):
    """Every query slot stayed taken until the source's timeout: not evaluated this time, the backend not known
    to be down (the evaluator keeps the rule due)."""


class Source(Protocol):
    """Evaluates a rule's condition: the samples where it holds (empty: clear), or raises SourceError."""

    name: str

    async def evaluate(self, rule: Rule) -> list[Sample]: ...


# Queries in flight at once: a thousand rules due together used to fire a thousand (18 s for that first pass).
# Measured on a 2-core host, 2 to 8 all pass 1,000 rules in 0.8-1.9 s and 4 was the quickest (docs/BENCHMARKS.md);
# more only queue inside Prometheus, which runs 20 queries at once by default.
DEFAULT_MAX_CONCURRENT_QUERIES = 4


class PrometheusSource:
    """Runs a rule's PromQL as an instant query; each result series is one sample (target labels dropped).

    At most ``max_concurrent_queries`` queries are in flight; the others wait for a slot in the order they came.
    ``timeout`` covers that wait and the query together, so a pass never waits longer for a rule than it did
    before queries were bounded: a query that waited past half of it is not sent (SourceBusy: the rule is due
    again next pass); one sent and unanswered in the time left raises SourceUnavailable.
    """

    name = "prometheus"

    def __init__(
        self,
        base_url: str,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 3.0,
        *,
        max_concurrent_queries: int = DEFAULT_MAX_CONCURRENT_QUERIES,
    ) -> None:
        if max_concurrent_queries < 1:
            raise ValueError(f"max_concurrent_queries must be at least 1, not {max_concurrent_queries}")
        self._url = base_url.rstrip("/") + "/api/v1/query"
        self._client = http_client
        self._owns_client = http_client is None
        self._timeout = timeout
        self._max_concurrent = max_concurrent_queries
        self._slots = asyncio.Semaphore(max_concurrent_queries)

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def evaluate(self, rule: Rule) -> list[Sample]:
        client = self._client
        if client is None:
            client = self._client = httpx.AsyncClient()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            raise SourceBusy(
                f"rule {rule.name}: all {self._max_concurrent} query slots taken for {self._timeout:g} s"
            ) from None
        try:
            left = deadline - loop.time()
            if left < self._timeout / 2:
                # A query sent with too little time left would time out on a merely busy Prometheus and be taken
                # for an outage (MONITORING_BACKEND_DOWN): the rule waits for the next pass instead.
                raise SourceBusy(
                    f"rule {rule.name}: a query slot came free with {left:.2f} s of {self._timeout:g} s left"
                )
            return await self._query(client, rule, left)
        finally:
            self._slots.release()

    async def _query(self, client: httpx.AsyncClient, rule: Rule, timeout: float) -> list[Sample]:
        try:
            response = await client.get(self._url, params={"query": rule.expr}, timeout=timeout)
        except httpx.TimeoutException:
            raise SourceUnavailable(self.name, f"no answer within {timeout:.2g} s") from None
        except httpx.HTTPError as exc:
            raise SourceUnavailable(self.name, f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise SourceUnavailable(self.name, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise SourceUnavailable(self.name, f"HTTP {response.status_code}, body is not JSON") from None
        if response.status_code != 200 or body.get("status") != "success":
            # 400/422: the query itself is at fault (a rules problem, not a backend outage).
            raise SourceError(f"rule {rule.name}: {body.get('errorType', 'error')}: {body.get('error', response.text)}")
        return _samples(body["data"])


def _samples(data: dict) -> list[Sample]:
    """The series of a query result as samples; series equal once target labels are dropped keep the largest."""
    if data.get("resultType") == "scalar":
        value = float(data["result"][1])
        return [Sample({}, value)] if value and not math.isnan(value) else []
    merged: dict[tuple, Sample] = {}
    for series in data.get("result", ()):
        labels = {k: v for k, v in series.get("metric", {}).items() if k not in _TARGET_LABELS}
        value = float(series["value"][1])
        key = tuple(sorted(labels.items()))
        if key not in merged or value > (merged[key].value or -math.inf):
            merged[key] = Sample(labels, value)
    return list(merged.values())


@dataclass(frozen=True)
class CheckThresholds:
    """When a check rule holds: a failure streak above ``streak_above``, a quota in one of ``quota_statuses``."""

    streak_above: int = 10
    quota_statuses: tuple[str, ...] = (CRITICAL, EXCEEDED)


# How old a health report a check rule accepts when it has no interval of its own (the P0 cadence).
_P0_MAX_AGE = 5.0

# health.<check> | quota.<provider or *> | streak.<provider or *> [> N]
CHECK_EXPR = re.compile(r"^(?P<kind>health|quota|streak)\.(?P<target>[A-Za-z0-9_*-]+)(?:\s*>\s*(?P<above>\d+))?$")


class HealthReports(Protocol):
    """The health service as check rules read it; one with ``fresh_report(max_age)`` is asked for that instead."""

    async def report(self) -> Mapping[str, Any]: ...


class QuotaViews(Protocol):
    """The quota service as check rules read it: the last view of each provider."""

    def latest(self) -> Iterable[QuotaView]: ...


class CheckSource:
    """Evaluates ``check`` rules over the service's own objects.

    ``health.<check>`` holds while that check of the health report is unhealthy (labels ``check``);
    ``quota.<provider>`` while its quota status is critical or exceeded (less than 10 % left; value: percent
    left); ``streak.<provider>`` while its shared failure streak is above 10, or above N with ``streak.x > N``
    (value: the streak; trace_id: its last failing call). A streak a success ended within the last minute counts
    with its peak, so one that passed the threshold between two evaluations is not missed. ``*`` as provider:
    one sample per provider.
    """

    name = "checks"

    def __init__(
        self,
        health_service: HealthReports | None = None,
        quota_service: QuotaViews | None = None,
        streaks: FailureStreaks | None = None,
        thresholds: CheckThresholds = CheckThresholds(),
        providers: tuple[str, ...] = SERVICE_KEYS,
    ) -> None:
        self._health = health_service
        self._quota = quota_service
        self._streaks = streaks
        self._thresholds = thresholds
        self._providers = providers

    async def evaluate(self, rule: Rule) -> list[Sample]:
        match = CHECK_EXPR.match(rule.expr.strip())
        if match is None:
            raise SourceError(f"rule {rule.name}: unknown check {rule.expr!r}")
        kind, target = match["kind"], match["target"]
        if match["above"] is not None and kind != "streak":
            raise SourceError(f"rule {rule.name}: only streak checks take a threshold: {rule.expr!r}")
        if kind == "health":
            return await self._health_samples(rule, target)
        if kind == "quota":
            return await self._quota_samples(rule, target)
        above = int(match["above"]) if match["above"] is not None else self._thresholds.streak_above
        return await self._streak_samples(rule, target, above)

    def _targets(self, rule: Rule, target: str) -> tuple[str, ...]:
        if target == "*":
            return self._providers
        if target not in self._providers:
            raise SourceError(f"rule {rule.name}: unknown provider {target!r}")
        return (target,)

    async def _health_samples(self, rule: Rule, check: str) -> list[Sample]:
        if self._health is None:
            raise SourceError(f"rule {rule.name}: no health service")
        # The rule must see a dependency die within its own interval, not the endpoint's cache TTL (5 min).
        fresh = getattr(self._health, "fresh_report", None)
        report = await (fresh(rule.interval_seconds or _P0_MAX_AGE) if fresh else self._health.report())
        result = (report or {}).get("checks", {}).get(check)
        if result is None:
            raise SourceError(f"rule {rule.name}: the health report has no check {check!r}")
        return [Sample({"check": check}, 1.0)] if result.get("status") == UNHEALTHY else []

    async def _quota_samples(self, rule: Rule, target: str) -> list[Sample]:
        if self._quota is None:
            raise SourceError(f"rule {rule.name}: no quota service")
        views = {view.service: view for view in self._quota.latest()}
        samples = []
        for provider in self._targets(rule, target):
            view = views.get(provider)
            if view is None or view.percentage is None:
                if target == "*":
                    continue  # no reading yet for this one; the others still count
                raise SourceError(f"rule {rule.name}: no quota reading for {provider} yet")
            if view.status in self._thresholds.quota_statuses:
                samples.append(Sample({"service": provider}, round(100.0 - view.percentage, 2)))
        return samples

    async def _streak_samples(self, rule: Rule, target: str, above: int) -> list[Sample]:
        if self._streaks is None:
            raise SourceError(f"rule {rule.name}: no failure streaks")
        providers = self._targets(rule, target)
        try:
            # One Redis read for every provider, off the event loop; it raises when Redis does not answer.
            streaks = await asyncio.to_thread(self._streaks.shared, providers)
        except Exception as exc:  # unknown is not clear: the rule's alerts keep their state
            raise SourceError(f"rule {rule.name}: failure streaks unavailable: {type(exc).__name__}: {exc}") from None
        return [
            Sample({"service": p}, float(streaks[p].count), streaks[p].last_trace_id)
            for p in providers
            if streaks[p].count > above
        ]


def streak_trace_lookup(streaks: FailureStreaks) -> Callable[[str], str | None]:
    """The last failing trace of a provider while it is failing (streak > 0), for the Evaluator's trace_lookup."""

    def lookup(service: str) -> str | None:
        streak = streaks.current(service)
        return streak.last_trace_id if streak.count > 0 else None

    return lookup

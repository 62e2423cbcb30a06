"""The metrics otel-monitor records: one definition site for their names, units, labels and buckets."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from weakref import WeakKeyDictionary, WeakSet

from opentelemetry.context import Context, get_current
from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    Meter,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    Observation,
    get_meter_provider,
)
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TOKEN_USAGE,
)
from opentelemetry.util.types import Attributes

from otel_monitor.instrument.error_codes import ProviderFailure, provider_error_code

__all__ = [
    "CALL_DURATION_BUCKETS",
    "PROJECT_DURATION_BUCKETS",
    "RETRY_AFTER_BUCKETS",
    "PROJECT_COST_BUCKETS",
    "GEN_AI_DURATION_BUCKETS",
    "GEN_AI_TOKEN_BUCKETS",
    "ExternalApiInstruments",
    "GenAiInstruments",
    "BusinessInstruments",
    "CallMetrics",
    "CollectionTimeRecords",
    "CostCounter",
    "PromNames",
    "Outcome",
    "ResultOutcome",
    "DroppedSignal",
    "DropReason",
    "METER_NAME",
    "HostLabel",
    "observe_call_metrics",
    "observe_dropped_telemetry",
    "observe_host_usage",
    "observe_shared_values",
]

_log = logging.getLogger("otel_monitor.metrics")

METER_NAME = "otel_monitor"
# The unit of the cost instruments: the collector's Prometheus exporter appends it, giving ``_usd``.
COST_UNIT = "usd"


class Outcome:
    """Values of the ``outcome`` label of external API calls."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    PARTIAL_FAILURE = "partial_failure"
    ALL = (SUCCESS, ERROR, TIMEOUT, PARTIAL_FAILURE)


class ResultOutcome:
    """Values of the ``outcome`` label of OAuth token refreshes and of finished video projects."""

    SUCCESS = "success"
    FAILURE = "failure"
    ALL = (SUCCESS, FAILURE)


class DroppedSignal:
    """Values of the ``signal`` label of dropped telemetry: what the process lost to protect the host."""

    LOG_LINE = "log_line"  # a log record for the JSON file/console or the OTLP log bridge
    REDIS_WRITE = "redis_write"  # a failure-streak, usage-counter or active-user update
    ALL = (LOG_LINE, REDIS_WRITE)


class DropReason:
    """Values of the ``reason`` label of dropped telemetry."""

    QUEUE_FULL = "queue_full"  # the background writer's bounded queue was full: dropped instead of waiting
    WRITE_FAILED = "write_failed"  # the background writer sent it and the destination refused or was away
    ALL = (QUEUE_FULL, WRITE_FAILED)


# Seconds. Fine at the low end (P50 targets of 2-5 s) and reaching 15 minutes (uploads); every latency threshold
# of docs/requirements.md, Thresholds (2, 5, 10, 15, 20, 30, 45, 90, 120 s, 5 and 10 min) is a bound.
CALL_DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2,
    5,
    10,
    15,
    20,
    30,
    45,
    60,
    90,
    120,
    180,
    300,
    600,
    900,
)
# Seconds; the generation-time target and warning are 10 and 20 minutes (docs/requirements.md, Thresholds).
PROJECT_DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200)
# Seconds until a provider limit clears: a per-minute throttle (under 60), Stability's 60-second lockout, a daily
# quota (up to a day).
RETRY_AFTER_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 900, 3600, 21600, 86400)
# USD per video project: a Gemini-only project costs fractions of a cent, a full one with images and an avatar
# video a few dollars.
PROJECT_COST_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100)
# The GenAI conventions' advised buckets: seconds of gen_ai.client.operation.duration (0.01 doubling to 81.92) and
# tokens of gen_ai.client.token.usage (powers of 4 from 1 to 4^13).
GEN_AI_DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))
GEN_AI_TOKEN_BUCKETS = tuple(4**i for i in range(14))


class PromNames:
    """The series names the collector's Prometheus exporter gives these instruments (unit and _total suffixes)."""

    # Calls by service and outcome: the duration histogram's ``_count``.
    CALL_DURATION = "external_api_call_duration_seconds"
    CALL_COUNT = "external_api_call_duration_seconds_count"
    ERRORS = "external_api_errors_total"
    # Refusals that name a provider limit, by service, error_code, limit and model: seconds until it clears.
    RETRY_AFTER = "external_api_retry_after_seconds"
    RETRIES = "external_api_retries_total"
    # USD the calls cost by the configured price table, by service and model (Gemini's; the operation otherwise).
    COST = "external_api_cost_usd_total"
    TOKEN_REFRESHES = "external_api_token_refreshes_total"
    ITEMS = "external_api_items_total"
    CONSECUTIVE_FAILURES = "external_api_consecutive_failures"
    PROJECTS_STARTED = "video_projects_started_total"
    PROJECTS_COMPLETED = "video_projects_completed_total"
    PROJECT_DURATION = "video_project_generation_duration_seconds"
    # USD each finished project cost (the sum over its calls), by outcome: a histogram.
    PROJECT_COST = "video_project_cost_usd"
    ACTIVE_USERS = "video_active_users"
    TELEMETRY_DROPPED = "otel_monitor_telemetry_dropped_total"
    # The host of the exporting process (0..1), labelled by HostLabel.HOST (disk also by HostLabel.PATH).
    HOST_CPU_USAGE = "host_cpu_usage_ratio"
    HOST_MEMORY_USAGE = "host_memory_usage_ratio"
    HOST_DISK_FREE = "host_disk_free_ratio"
    # The GenAI conventions' instruments, labelled gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model;
    # tokens also gen_ai_token_type (input|output); the duration (opted in only) also error_type on failure.
    GEN_AI_OPERATION_DURATION = "gen_ai_client_operation_duration_seconds"
    GEN_AI_TOKEN_USAGE = "gen_ai_client_token_usage"


class HostLabel:
    """Labels of the host series: the host's name and, for disk, the mount point of the file system."""

    HOST = "host"
    PATH = "path"


@dataclass(frozen=True)
class ExternalApiInstruments:
    """Instruments of external provider calls; every one is labelled by ``service``."""

    duration: Histogram  # service, outcome; its count is the number of calls by outcome
    errors: Counter  # service, error_code: every call that did not succeed, by what failed
    retries: Counter  # service
    token_refreshes: Counter  # service, outcome
    items: Counter  # service, result (succeeded|failed): the items of calls that produce several (images)
    retry_after: Histogram  # service, error_code, limit, model: refusals naming a limit, seconds until it clears

    @classmethod
    def create(cls, meter: Meter) -> ExternalApiInstruments:
        return cls(
            duration=meter.create_histogram(
                "external_api.call.duration",
                unit="s",
                description="Duration of external provider calls, retries included; its count is calls by outcome",
                explicit_bucket_boundaries_advisory=list(CALL_DURATION_BUCKETS),
            ),
            errors=meter.create_counter(
                "external_api.errors", unit="{call}", description="External provider calls that failed, by error code"
            ),
            retries=meter.create_counter(
                "external_api.retries", unit="{retry}", description="Retried attempts of external provider calls"
            ),
            token_refreshes=meter.create_counter(
                "external_api.token_refreshes", unit="{refresh}", description="OAuth token refreshes by outcome"
            ),
            items=meter.create_counter(
                "external_api.items", unit="{item}", description="Items requested from batch calls, by result"
            ),
            retry_after=meter.create_histogram(
                "external_api.retry_after",
                unit="s",
                description="Provider refusals that name a limit (429 RetryInfo/QuotaFailure, lockouts, daily caps), "
                "by limit: seconds until it clears",
                explicit_bucket_boundaries_advisory=list(RETRY_AFTER_BUCKETS),
            ),
        )

    def start_at_zero(self, services: Iterable[str]) -> int:
        """Adds 0 to the counters the alert rules read, for every label set a call to one of ``services`` can
        produce: errors by each provider error code, retries, token refreshes by outcome. Each series then exists
        from the process's start (cumulative: exported at 0 until it counts), so a first failure is an increase
        from 0 rather than a new series. The duration histogram (calls by outcome) cannot start so: recording is
        an observation. Returns the number of series added: 14 per service (44 + 4 + 8 for the four providers)."""
        added = 0
        for service in services:
            for failure in ProviderFailure:
                self.errors.add(0, {"service": service, "error_code": provider_error_code(service, failure)})
            self.retries.add(0, {"service": service})
            for outcome in ResultOutcome.ALL:
                self.token_refreshes.add(0, {"service": service, "outcome": outcome})
            added += len(ProviderFailure) + 1 + len(ResultOutcome.ALL)
        return added


@dataclass(frozen=True)
class GenAiInstruments:
    """The GenAI conventions' client instruments, recorded for the provider calls that are GenAI operations."""

    operation_duration: Histogram  # GenAiRequest.metric_attributes, error.type on failure (opted in only)
    token_usage: Histogram  # GenAiRequest.metric_attributes and gen_ai.token.type (input|output)

    @classmethod
    def create(cls, meter: Meter) -> GenAiInstruments:
        return cls(
            operation_duration=meter.create_histogram(
                GEN_AI_CLIENT_OPERATION_DURATION,
                unit="s",
                description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=list(GEN_AI_DURATION_BUCKETS),
            ),
            token_usage=meter.create_histogram(
                GEN_AI_CLIENT_TOKEN_USAGE,
                unit="{token}",
                description="Number of input and output tokens used",
                explicit_bucket_boundaries_advisory=list(GEN_AI_TOKEN_BUCKETS),
            ),
        )


@dataclass(frozen=True)
class BusinessInstruments:
    """Instruments of the business table: projects and their generation time."""

    projects_started: Counter
    projects_completed: Counter  # outcome: success|failure
    project_duration: Histogram  # outcome
    project_cost: Histogram  # outcome: USD, the sum over the project's calls

    @classmethod
    def create(cls, meter: Meter) -> BusinessInstruments:
        return cls(
            projects_started=meter.create_counter(
                "video_projects.started", unit="{project}", description="Video projects started"
            ),
            projects_completed=meter.create_counter(
                "video_projects.completed", unit="{project}", description="Video projects finished, by outcome"
            ),
            project_duration=meter.create_histogram(
                "video_project.generation.duration",
                unit="s",
                description="Time from project start to finished video",
                explicit_bucket_boundaries_advisory=list(PROJECT_DURATION_BUCKETS),
            ),
            project_cost=meter.create_histogram(
                "video_project.cost",
                unit=COST_UNIT,
                description="What a finished project's provider calls cost, by the price table",
                explicit_bucket_boundaries_advisory=list(PROJECT_COST_BUCKETS),
            ),
        )

    def start_at_zero(self) -> int:
        """Adds 0 to the project counters (started; completed by each outcome), as ``ExternalApiInstruments``
        does: a first failed project is an increase from 0. Returns the number of series added (3)."""
        self.projects_started.add(0)
        for outcome in ResultOutcome.ALL:
            self.projects_completed.add(0, {"outcome": outcome})
        return 1 + len(ResultOutcome.ALL)


class CostCounter:
    """``external_api.cost`` {service, model}: USD by the configured price table, summed in the process (a dict
    addition under a lock per call instead of a synchronous counter's measurement, which costs the calling thread
    several times more) and exported as an observable counter: cumulative since the process started, as a
    counter's sums are. One per meter provider (``observe_call_metrics``)."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def add(self, amount: float, service: str, model: str) -> None:
        """Counts ``amount`` USD for ``service`` and ``model`` (its model, else its operation); 0 makes the series."""
        key = (service, model)
        with self._lock:
            self._sums[key] = self._sums.get(key, 0.0) + amount

    def observe(self, _options: CallbackOptions) -> list[Observation]:
        with self._lock:
            sums = list(self._sums.items())
        return [Observation(total, {"service": service, "model": model}) for (service, model), total in sums]


class CollectionTimeRecords:
    """Histogram measurements of provider calls, queued in the process by the calling thread and recorded into their
    SDK histograms when metrics are collected, each with the context of its call (so its exemplar names the call's
    trace). What the SDK exports is the same as recording at once: collection is when recorded values are read.
    The calling thread pays a queue append instead of the SDK's synchronous measurement (attribute cleaning and
    hashing, exemplar filter and reservoir, aggregation lock: about 20-25 us each; a Gemini call makes three); the
    collecting thread (the periodic reader's) pays that instead. Past ``limit`` queued measurements (no collection
    is coming: no reader, or one that fell behind) a measurement is recorded at once, as before: nothing is lost
    and the queue stays bounded. One per meter provider (``observe_call_metrics``), drained by the callback of its
    cost counter, which the SDK runs before it reads its storage."""

    LIMIT = 20_000  # three minutes of 100 Gemini calls a second between collections (a minute apart by default)

    def __init__(self, limit: int = LIMIT) -> None:
        self._queued: deque[tuple[Histogram, float, Attributes, Context]] = deque()
        self._limit = limit
        _all_collection_time_records.add(self)

    def record(self, histogram: Histogram, amount: float, attributes: Attributes) -> None:
        """``histogram.record(amount, attributes)`` in the current context, done at the next collection."""
        if len(self._queued) < self._limit:
            self._queued.append((histogram, amount, attributes, get_current()))
        else:
            histogram.record(amount, attributes)

    def record_queued(self) -> int:
        """Records what was queued until now into the SDK (the caller is collecting); returns how many measurements
        it took from the queue (one the SDK refused included: it is logged, not queued again)."""
        recorded = 0
        for _ in range(len(self._queued)):  # what is queued meanwhile waits for the next collection
            try:
                histogram, amount, attributes, context = self._queued.popleft()
            except IndexError:
                break
            try:
                histogram.record(amount, attributes, context=context)
            except Exception:  # one bad measurement must not cost the others their collection
                _log.debug("could not record a queued measurement", exc_info=True)
            recorded += 1
        return recorded

    def forget_queued(self) -> None:
        """Drops what is queued: in a forked child, the parent's measurements (the parent records them)."""
        self._queued.clear()


_all_collection_time_records: WeakSet[CollectionTimeRecords] = WeakSet()


def _forget_parents_records() -> None:
    for records in list(_all_collection_time_records):
        records.forget_queued()


os.register_at_fork(after_in_child=_forget_parents_records)


@dataclass(frozen=True)
class CallMetrics:
    """What every recorder of one meter provider shares: the cost sums and the histogram measurements recorded at
    collection; one observable counter's callback serves both."""

    cost: CostCounter
    histograms: CollectionTimeRecords

    def observe(self, options: CallbackOptions) -> list[Observation]:
        self.histograms.record_queued()  # first: the SDK reads the histograms' storage after every callback
        return self.cost.observe(options)


# The call metrics of each meter provider (the global one also in _global_call_metrics, as it was before an SDK
# provider was set): the SDK keeps only the first callback of an instrument name, so every recorder of a provider
# shares what that callback reads.
_call_metrics: WeakKeyDictionary[object, CallMetrics] = WeakKeyDictionary()
_global_call_metrics: list[CallMetrics] = []
_call_metrics_lock = threading.Lock()


def observe_call_metrics(meter: Meter, meter_provider: MeterProvider | None) -> CallMetrics:
    """The call metrics of ``meter_provider`` (None: the global one), their callback registered on ``meter`` (the
    provider's) by the first recorder; the same for every later one."""
    global_provider = get_meter_provider()
    provider = meter_provider if meter_provider is not None else global_provider
    with _call_metrics_lock:
        shared = _call_metrics.get(provider)
        if shared is None and provider is global_provider and _global_call_metrics:
            shared = _global_call_metrics[0]
        if shared is None:
            shared = CallMetrics(CostCounter(), CollectionTimeRecords())
            meter.create_observable_counter(
                "external_api.cost",
                callbacks=[shared.observe],
                unit=COST_UNIT,
                description="What provider calls cost, by the price table",
            )
        _call_metrics[provider] = shared
        if provider is global_provider and not _global_call_metrics:
            _global_call_metrics.append(shared)
    return shared


def observe_dropped_telemetry(meter: Meter, counts: Callable[[], Iterable[tuple[str, str, int]]]) -> ObservableCounter:
    """Exports ``otel_monitor.telemetry.dropped`` {signal, reason}: ``counts()`` gives the process's running totals
    as (DroppedSignal, DropReason, count), read at each collection."""

    def observe(_options: CallbackOptions) -> list[Observation]:
        return [Observation(count, {"signal": signal, "reason": reason}) for signal, reason, count in counts()]

    return meter.create_observable_counter(
        "otel_monitor.telemetry.dropped",
        callbacks=[observe],
        unit="{item}",
        description="Telemetry this process dropped rather than block or fail the host, by signal and reason",
    )


_Observe = Callable[[CallbackOptions], Iterable[Observation]]


def observe_host_usage(meter: Meter, *, cpu: _Observe, memory: _Observe, disk_free: _Observe) -> list[ObservableGauge]:
    """Exports the host's load, each gauge read by its callback at every collection: ``host.cpu.usage_ratio``
    and ``host.memory.usage_ratio`` {host}, ``host.disk.free_ratio`` {host, path} (all 0..1)."""
    gauges = (
        ("host.cpu.usage_ratio", cpu, "Busy share of the host's CPUs since the previous collection"),
        ("host.memory.usage_ratio", memory, "Share of the host's memory not available to new processes"),
        ("host.disk.free_ratio", disk_free, "Share of the file system available to unprivileged users"),
    )
    return [
        meter.create_observable_gauge(name, callbacks=[callback], unit="1", description=description)
        for name, callback, description in gauges
    ]


def observe_shared_values(
    meter: Meter, *, consecutive_failures: _Observe, active_users: _Observe
) -> list[ObservableGauge]:
    """Exports the values every backend process shares through Redis, each gauge read by its callback at every
    collection (by the monitor, so one exporter whatever the number of backend processes):
    ``external_api.consecutive_failures`` {service} and ``video.active_users``."""
    gauges = (
        (
            "external_api.consecutive_failures",
            consecutive_failures,
            "{call}",
            "Calls in a row that failed, across all processes (a streak ended within the last minute: its peak)",
        ),
        ("video.active_users", active_users, "{user}", "Distinct users active today (UTC), across all processes"),
    )
    return [
        meter.create_observable_gauge(name, callbacks=[callback], unit=unit, description=description)
        for name, callback, unit, description in gauges
    ]

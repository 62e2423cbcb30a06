"""Tracks calls to paid providers: one span, metrics by service and outcome, retries, failure streaks."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.classification import (
    SUCCESS,
    Classification,
    ProviderLimit,
    classify_exception,
    seconds_until_clear,
)
from otel_monitor.instrument.costs import (
    COST_AMOUNT,
    COST_CURRENCY,
    COST_CURRENCY_ATTRIBUTE,
    COST_SOURCE,
    COST_SOURCE_LOCAL,
    CallCost,
    PriceTable,
    ProjectCosts,
    current_project_id,
)
from otel_monitor.instrument.error_codes import ProviderFailure
from otel_monitor.instrument.failure_streaks import FailureStreaks, LocalFailureStreaks
from otel_monitor.instrument.genai import GenAiRequest, TokenUsage, gen_ai_latest_experimental, usage_attributes
from otel_monitor.instrument.metrics import (
    METER_NAME,
    ExternalApiInstruments,
    GenAiInstruments,
    Outcome,
    ResultOutcome,
    observe_call_metrics,
)

if TYPE_CHECKING:
    from otel_monitor.instrument.spend_ledger import SpendLedger
    from otel_monitor.instrument.usage_counter import UsageCounter

__all__ = ["ExternalCall", "ExternalCallRecorder", "current_external_call"]

_log = logging.getLogger("otel_monitor.external_calls")
_current: ContextVar[ExternalCall | None] = ContextVar("otel_monitor_external_call", default=None)
_Decorated = TypeVar("_Decorated", bound=Callable[..., Any])
# Label sets kept per recorder for the duration histogram of the hot path (services x outcomes).
_MAX_CACHED_LABEL_SETS = 1024


def _label_set(
    cache: dict[tuple[str, str], dict[str, AttributeValue]], key: str, service: str, value: str
) -> dict[str, AttributeValue]:
    """``{"service": service, key: value}``, built once per pair and kept in ``cache`` (every call records one on the
    hot path; the SDK copies what it keeps); past the cap (a value per call) built afresh instead."""
    labels = cache.get((service, value))
    if labels is None:
        labels = {"service": service, key: value}
        if len(cache) < _MAX_CACHED_LABEL_SETS:
            cache[(service, value)] = labels
    return labels


def current_external_call() -> ExternalCall | None:
    """The provider call being tracked in this context, if any."""
    return _current.get()


class ExternalCallRecorder:
    """Creates tracked provider calls; holds the tracer, instruments and failure streaks they report to."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        streaks: FailureStreaks | None = None,
        clock: Callable[[], float] = time.perf_counter,
        usage: UsageCounter | None = None,
        prices: PriceTable | None = None,
        project_costs: ProjectCosts | None = None,
        spend: SpendLedger | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(METER_NAME, tracer_provider=tracer_provider)
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self.instruments = ExternalApiInstruments.create(meter)
        self.gen_ai = GenAiInstruments.create(meter)
        shared = observe_call_metrics(meter, meter_provider)  # shared by the recorders of the meter provider
        self.cost = shared.cost  # USD by service and model
        # the hot path's histogram measurements (call duration, GenAI tokens and duration), recorded at collection
        self.histograms = shared.histograms
        # Opted into the latest GenAI conventions: GenAI spans named "{operation} {model}" and the operation's
        # duration also as gen_ai.client.operation.duration (otherwise only as external_api.call.duration)
        self.gen_ai_latest = gen_ai_latest_experimental()
        self.streaks: FailureStreaks = streaks if streaks is not None else LocalFailureStreaks()
        self.clock = clock
        self.usage = usage  # a UsageCounter: quota units of providers with no usage API, and quota refusals
        self.prices = prices if prices is not None else PriceTable()  # what each call costs (the shipped examples)
        # the cost of each video project, summed over its calls in every process (this process's own by default)
        self.project_costs = project_costs if project_costs is not None else ProjectCosts()
        self.spend = spend  # a SpendLedger: USD per provider and UTC day and month, across every process (budgets)
        self._duration_labels: dict[tuple[str, str], dict[str, AttributeValue]] = {}

    def duration_labels(self, service: str, outcome: str) -> dict[str, AttributeValue]:
        """The duration histogram's attributes of a call to ``service`` by ``outcome``; not to be changed."""
        return _label_set(self._duration_labels, "outcome", service, outcome)

    def track(self, service: str, operation: str | None = None, **attributes: AttributeValue) -> ExternalCall:
        """A context manager (sync or async) and decorator tracking one logical call to ``service``."""
        return ExternalCall(self, service, operation or "call", attributes)

    def adopt(self, span: Span, service: str, operation: str) -> ExternalCall:
        """Tracks a call on a span someone else owns (the upstream HTTP client span): no second span."""
        return ExternalCall(self, service, operation, {}, adopted_span=span)


class ExternalCall:
    """One logical provider call, retries included. Use as ``with``, ``async with`` or as a decorator.

    HTTP requests made inside it to the same provider (through instrumented httpx) are its attempts; one
    that follows a failed attempt is a retry. Errors of the host are recorded and re-raised unchanged.
    """

    # one per provider call, on the hot path: no instance dictionary to build
    __slots__ = (
        "recorder",
        "service",
        "operation",
        "_attributes",
        "attempts",
        "retries",
        "_last_attempt",
        "_explicit_failure",
        "_items",
        "_span",
        "_owns_span",
        "_context_token",
        "_token",
        "_started",
        "_gen_ai",
        "_tokens",
        "classification",
    )

    def __init__(
        self,
        recorder: ExternalCallRecorder,
        service: str,
        operation: str,
        attributes: dict[str, AttributeValue],
        adopted_span: Span | None = None,
    ) -> None:
        self.recorder = recorder
        self.service = service
        self.operation = operation
        self._attributes = attributes
        self.attempts = 0
        self.retries = 0
        self._last_attempt: Classification = SUCCESS
        self._explicit_failure: ProviderFailure | None = None
        self._items: tuple[int, int] | None = None
        self._span = adopted_span
        self._owns_span = adopted_span is None
        self._context_token: Token[Context] | None = None
        self._token: Token[ExternalCall | None] | None = None
        self._started = 0.0
        self._gen_ai: GenAiRequest | None = None
        self._tokens: TokenUsage | None = None
        self.classification: Classification | None = None

    # -- use as a decorator: a fresh call per invocation ------------------------------------------
    def __call__(self, func: _Decorated) -> _Decorated:
        def fresh() -> ExternalCall:
            return ExternalCall(self.recorder, self.service, self.operation, self._attributes)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                async with fresh():
                    return await func(*args, **kwargs)

            return cast(_Decorated, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with fresh():
                return func(*args, **kwargs)

        return cast(_Decorated, wrapper)

    # -- what the caller reports -------------------------------------------------------------------
    @property
    def trace_id(self) -> str | None:
        if self._span is None:
            return None
        ctx = self._span.get_span_context()
        return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None

    def record_attempt(self, classification: Classification) -> None:
        """One HTTP request of this call finished. A request that follows a failed one is a retry;
        one that follows a success is the next step of the call (e.g. polling a job), not a retry."""
        self.attempts += 1
        if self.attempts > 1 and self._last_attempt.failed:
            self.retries += 1
        self._last_attempt = classification

    def record_retry(self, count: int = 1) -> None:
        """The caller retried on its own (without an attempt that this call saw)."""
        self.retries += count

    def mark_partial(self, succeeded: int, requested: int) -> None:
        """Only ``succeeded`` of ``requested`` items came back (e.g. 3 of 5 images)."""
        self._items = (succeeded, requested)

    def record_gen_ai_request(self, request: GenAiRequest) -> None:
        """A request of this call is a GenAI operation (the last one names the call); a call not yet started names
        its span when it starts."""
        self._gen_ai = request
        if self._token is not None:
            self._name_gen_ai_span()

    def record_tokens(self, usage: TokenUsage) -> None:
        """A response of this call used these tokens (the call's tokens are the sum over its requests)."""
        self._tokens = usage if self._tokens is None else self._tokens + usage

    @property
    def reads_gen_ai_answer(self) -> bool:
        """Whether the call's answers carry token counts to read: a GenAI operation, not streamed."""
        return self._gen_ai is not None and not self._gen_ai.streamed

    def _name_gen_ai_span(self) -> None:
        span, request = self._span, self._gen_ai
        if span is None or request is None or not span.is_recording():
            return
        # an adopted span is the upstream HTTP span, which has the server's address and port already
        span.set_attributes(request.span_attributes if self._owns_span else request.metric_attributes)
        if self.recorder.gen_ai_latest:
            span.update_name(request.span_name)

    def fail(self, failure: ProviderFailure) -> None:
        """The caller judged this call failed although nothing raised."""
        self._explicit_failure = failure

    @contextmanager
    def token_refresh(self) -> Iterator[None]:
        """Wraps an OAuth token refresh: counts it by outcome; a failure becomes this call's failure."""
        outcome = ResultOutcome.SUCCESS
        try:
            yield
        except Exception as exc:
            outcome = ResultOutcome.FAILURE
            classified = classify_exception(self.service, exc)
            self._explicit_failure = classified.failure or ProviderFailure.TOKEN_REFRESH_FAILED
            raise
        finally:
            self._safely(
                self.recorder.instruments.token_refreshes.add, 1, {"service": self.service, "outcome": outcome}
            )

    # -- lifecycle ------------------------------------------------------------------------------------
    def _call_attributes(self) -> dict[str, AttributeValue]:
        return {
            "peer.service": self.service,
            "external_api.service": self.service,
            "external_api.operation": self.operation,
            **self._attributes,
        }

    def _start(self) -> ExternalCall:
        self._started = self.recorder.clock()
        try:
            if self._owns_span:
                self._span = self.recorder.tracer.start_span(
                    f"{self.service} {self.operation}", kind=SpanKind.CLIENT, attributes=self._call_attributes()
                )
                self._context_token = trace.context_api.attach(trace.set_span_in_context(self._span))
                self._name_gen_ai_span()
            # the upstream HTTP span gets the call's attributes with its outcome, in one update (one lock); its name
            # now, so what reads the name during the call sees the GenAI one
            elif self._gen_ai is not None and self.recorder.gen_ai_latest and self._span is not None:
                if self._span.is_recording():
                    self._span.update_name(self._gen_ai.span_name)
        except Exception:  # pragma: no cover - a broken SDK must not break the host
            _log.debug("could not start external call span", exc_info=True)
            self._span, self._context_token, self._owns_span = None, None, False
        self._token = _current.set(self)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("External API call started", extra={"service": self.service, "operation": self.operation})
        return self

    def _classify(self, exc: BaseException | None) -> Classification:
        if exc is not None:
            return classify_exception(self.service, exc)
        if self._explicit_failure is not None:
            outcome = Outcome.TIMEOUT if self._explicit_failure is ProviderFailure.TIMEOUT else Outcome.ERROR
            return Classification(outcome, self._explicit_failure)
        if self._last_attempt.failed:
            return self._last_attempt
        if self._items is not None and self._items[0] < self._items[1]:
            return Classification(Outcome.PARTIAL_FAILURE, ProviderFailure.PARTIAL_FAILURE)
        return SUCCESS

    def _finish(self, exc: BaseException | None) -> None:
        elapsed = max(self.recorder.clock() - self._started, 0.0)
        try:
            if self._token is not None:
                _current.reset(self._token)
        except ValueError:  # exited in another context (an async generator finalised elsewhere)
            _current.set(None)
        try:
            self.classification = self._classify(exc)
            self._report(self.classification, elapsed, exc)
        except Exception:  # observability never raises into the host
            _log.debug("could not record external call", exc_info=True)
        finally:
            if self._context_token is not None:
                trace.context_api.detach(self._context_token)
            if self._span is not None and self._owns_span:
                self._span.end()

    def _report(self, result: Classification, elapsed: float, exc: BaseException | None) -> None:
        instruments = self.recorder.instruments
        service = self.service
        error_code = result.error_code(service)
        # Calls by outcome are the histogram's count: one data point per successful call on the hot path.
        self.recorder.histograms.record(
            instruments.duration, elapsed, self.recorder.duration_labels(service, result.outcome)
        )
        if error_code:
            instruments.errors.add(1, {"service": service, "error_code": error_code})
        if self.retries:
            instruments.retries.add(self.retries, {"service": service})
        if self._items is not None:
            succeeded, requested = self._items
            instruments.items.add(succeeded, {"service": service, "result": "succeeded"})
            instruments.items.add(max(requested - succeeded, 0), {"service": service, "result": "failed"})
        if self.recorder.usage is not None:  # the operation's cost, once more for each retried attempt
            units = self.recorder.usage.cost(service, self.operation) * (self.retries + 1)
            if units:
                self.recorder.usage.record(service, units)
            if result.failure is ProviderFailure.QUOTA_EXCEEDED:  # the provider's refusal proves the quota spent
                self.recorder.usage.record_refusal(service)
            if self._gen_ai is not None:  # per-model limits: every attempt is a request, input tokens count
                tokens = self._tokens.input if self._tokens is not None else 0
                self.recorder.usage.record_model(service, self._gen_ai.model, self.retries + 1, tokens)
        limit_fields = self._limit_fields(result.limit, error_code) if result.limit and error_code else {}
        if self._gen_ai is not None:
            self._report_gen_ai(self._gen_ai, elapsed, error_code)
        cost = self._report_cost(result)
        streak = None
        if result.outcome != Outcome.PARTIAL_FAILURE:
            streak = self.recorder.streaks.record(service, result.failed, self.trace_id if result.failed else None)
        span = self._span
        if span is not None and span.is_recording():
            # an adopted span (the upstream HTTP one) gets the call's and the GenAI request's attributes here too
            attributes: dict[str, AttributeValue] = {} if self._owns_span else self._call_attributes()
            if not self._owns_span and self._gen_ai is not None:
                attributes.update(self._gen_ai.metric_attributes)
            attributes |= {
                "external_api.outcome": result.outcome,
                "external_api.attempts": max(self.attempts, 1),
                "external_api.retries": self.retries,
            }
            if self._items is not None:
                attributes["external_api.items.succeeded"], attributes["external_api.items.requested"] = self._items
            if error_code:
                attributes["external_api.error_code"] = attributes["error.type"] = error_code
            attributes.update({f"external_api.{key}": value for key, value in limit_fields.items()})
            if self._tokens is not None:
                attributes.update(usage_attributes(self._tokens))
            if cost is not None:
                attributes[COST_AMOUNT] = cost.amount
                attributes[COST_CURRENCY_ATTRIBUTE] = COST_CURRENCY
                attributes[COST_SOURCE] = COST_SOURCE_LOCAL
            span.set_attributes(attributes)
            if result.failed:
                if isinstance(exc, Exception) and self._owns_span:  # an adopted span records its own
                    span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, error_code))
        # Failures are what operators search the log for (with their trace_id); successful calls are in the
        # traces and metrics already, and a line for each would flood the log.
        level = logging.WARNING if result.outcome != Outcome.SUCCESS else logging.DEBUG
        if _log.isEnabledFor(level):
            fields = {
                "service": service,
                "operation": self.operation,
                "outcome": result.outcome,
                "duration_ms": round(elapsed * 1000, 1),
                "retries": self.retries,
            }
            if error_code:
                fields["error_code"] = error_code
            fields.update(limit_fields)
            if streak:
                fields["consecutive_failures"] = streak
            _log.log(level, "External API call finished", extra=fields)

    def _limit_fields(self, limit: ProviderLimit, error_code: str) -> dict[str, AttributeValue]:
        """The provider limit a refusal named, for the span (``external_api.`` prefixed) and the log line; and
        its refusal counted with the seconds until it clears (``external_api.retry_after``), by limit and model."""
        fields: dict[str, AttributeValue] = {"limit": limit.name, "limit_clears": limit.clears}
        if limit.model:
            fields["limit_model"] = limit.model
        if limit.quota_id:
            fields["limit_quota_id"] = limit.quota_id
        if limit.quota_metric:
            fields["limit_quota_metric"] = limit.quota_metric
        if limit.retry_after_seconds is not None:
            fields["retry_after_s"] = limit.retry_after_seconds
        if limit.resets_at:
            fields["limit_resets_at"] = limit.resets_at
        wait = seconds_until_clear(limit, utc_now())
        labels = {"service": self.service, "error_code": error_code, "limit": limit.name}
        if limit.model:
            labels["model"] = limit.model
        self._safely(self.recorder.instruments.retry_after.record, wait if wait is not None else 0.0, labels)
        return fields

    def _report_cost(self, result: Classification) -> CallCost | None:
        """Prices the call by the recorder's table (None: its provider is not priced), counts it by service and
        model, and adds it to the cost of the video project in this context, if any."""
        images = 0
        if self._items is not None:
            images = self._items[0]
        elif not result.failed:
            images = 1  # a call that produces images and does not say how many produced one
        model = self._gen_ai.model if self._gen_ai is not None else None
        cost = self.recorder.prices.cost(
            self.service, self.operation, model=model, tokens=self._tokens, images=images, succeeded=not result.failed
        )
        if cost is None:
            return None
        self.recorder.cost.add(cost.amount, self.service, cost.priced_as)
        project_id = current_project_id()
        if project_id is not None and cost.amount:
            self.recorder.project_costs.add(project_id, cost.amount)
        if self.recorder.spend is not None and cost.amount:
            self.recorder.spend.add(self.service, cost.amount)
        return cost

    def _report_gen_ai(self, request: GenAiRequest, elapsed: float, error_code: str | None) -> None:
        """The GenAI conventions' metrics of the call: its tokens when the answer told them and, opted in, its
        duration."""
        attributes = request.metric_attributes
        instruments, histograms = self.recorder.gen_ai, self.recorder.histograms
        if self.recorder.gen_ai_latest:
            histograms.record(
                instruments.operation_duration,
                elapsed,
                {**attributes, ERROR_TYPE: error_code} if error_code else attributes,
            )
        if self._tokens is not None:
            histograms.record(instruments.token_usage, self._tokens.input, request.input_token_attributes)
            histograms.record(instruments.token_usage, self._tokens.output, request.output_token_attributes)

    @staticmethod
    def _safely(func: Callable[..., object], *args: Any) -> None:
        try:
            func(*args)
        except Exception:
            _log.debug("could not record metric", exc_info=True)

    def __enter__(self) -> ExternalCall:
        return self._start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> ExternalCall:
        return self._start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(exc)

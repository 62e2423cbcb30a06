"""The External APIs dashboard: every provider's calls side by side, then one row per provider (a repeated row)."""

from __future__ import annotations

from dataclasses import dataclass

from otel_monitor.instrument.metrics import Outcome, PromNames
from otel_monitor.monitor.alerting.thresholds import Thresholds
from tools.dashboards.business import OVER_RANGE
from tools.dashboards.grafana import (
    BAD_TO_GOOD,
    GOOD_TO_BAD,
    Board,
    Panel,
    bargauge,
    levels,
    logs,
    logs_target,
    query_variable,
    spec_text,
    stat,
    target,
    threshold_override,
    timeseries,
)
from tools.dashboards.promql import over_range, quantile, rate, selector, share, total

__all__ = ["PROVIDER_PANELS", "ProviderPanel", "external_apis"]

SERVICES = 'service=~"$service"'
SUCCESS = 'outcome="success"'
FAILED = 'outcome=~"error|timeout"'
CALLS = PromNames.CALL_COUNT
BUCKETS = f"{PromNames.CALL_DURATION}_bucket"
# The backend's line for each call that did not succeed (it logs successful calls at DEBUG, never exported), with
# its fields as VictoriaLogs stores them: the provider, the outcome, the error code and the trace_id.
FAILED_CALL_LINES = f'service:="$service" outcome:* -outcome:="{Outcome.SUCCESS}"'


def _calls(*matchers: str) -> str:
    return selector(CALLS, SERVICES, *matchers)


def _counted_share(series: str, *part: str) -> str:
    """The share of ``series``' increase over the range carrying the ``part`` matchers, per provider."""
    return share(over_range(selector(series, SERVICES, *part)), over_range(selector(series, SERVICES)), "service")


def _counted_mean(*matchers: str) -> str:
    """Mean call duration over the range, per provider."""
    seconds = total(over_range(selector(f"{PromNames.CALL_DURATION}_sum", SERVICES, *matchers)), "service")
    return f"{seconds}\n/\n{total(over_range(_calls(*matchers)), 'service')}"


@dataclass(frozen=True)
class ProviderPanel:
    """A panel of the repeated provider row; its thresholds are those of ``quantities`` (the first a provider of
    the thresholds file defines), per provider, as field overrides matching the provider's series."""

    title: str
    description: str
    expr: str
    unit: str
    quantities: tuple[str, ...] = ()
    higher_is_better: bool = False
    trend: bool = False  # a time series of rates, not a stat over the range

    @property
    def ratio(self) -> bool:
        return self.unit == "percentunit"


# The repeated row, in layout order: six stats a line.
PROVIDER_PANELS = (
    ProviderPanel(
        "$service success rate",
        "Calls whose outcome is success, of all calls.",
        _counted_share(CALLS, SUCCESS),
        "percentunit",
        ("success_rate", "upload_success_rate"),
        higher_is_better=True,
    ),
    ProviderPanel(
        "$service error rate",
        "Calls that failed (outcome error or timeout), of all calls.",
        _counted_share(CALLS, FAILED),
        "percentunit",
        ("error_rate",),
    ),
    ProviderPanel(
        "$service timeout rate",
        "Calls that timed out, of all calls.",
        _counted_share(CALLS, 'outcome="timeout"'),
        "percentunit",
        ("timeout_rate",),
    ),
    ProviderPanel(
        "$service partial-failure rate",
        "Calls that returned only some of their items, of all calls.",
        _counted_share(CALLS, 'outcome="partial_failure"'),
        "percentunit",
        ("partial_failure_rate",),
    ),
    ProviderPanel(
        "$service retries per request",
        "Retried attempts per logical call (a call retried twice counts 2).",
        share(over_range(selector(PromNames.RETRIES, SERVICES)), over_range(_calls()), "service"),
        "short",
        ("retries_per_request",),
    ),
    ProviderPanel(
        "$service items failed",
        "Items requested but not returned (Stability: images), of all items requested.",
        _counted_share(PromNames.ITEMS, 'result="failed"'),
        "percentunit",
    ),
    *(
        ProviderPanel(
            f"$service P{q * 100:g} latency",
            "Duration of a whole call, retries included, all outcomes.",
            quantile(q, over_range(selector(BUCKETS, SERVICES)), "service"),
            "s",
            (f"latency_p{q * 100:g}_seconds",),
        )
        for q in (0.5, 0.9, 0.99)
    ),
    ProviderPanel(
        "$service average successful call time",
        "Mean duration of the calls that succeeded (YouTube: an upload).",
        _counted_mean(SUCCESS),
        "s",
        ("upload_seconds",),
    ),
    ProviderPanel(
        "$service token refresh success rate",
        "OAuth token refreshes that succeeded, of all refreshes (YouTube).",
        _counted_share(PromNames.TOKEN_REFRESHES, SUCCESS),
        "percentunit",
        ("token_refresh_success_rate",),
        higher_is_better=True,
    ),
    ProviderPanel(
        "$service average successful call time (trend)",
        "Mean duration of the calls that succeeded, over time.",
        f"{total(rate(selector(f'{PromNames.CALL_DURATION}_sum', SERVICES, SUCCESS)), 'service')}\n/\n"
        f"{total(rate(_calls(SUCCESS)), 'service')}",
        "s",
        ("upload_seconds",),
        trend=True,
    ),
)


def _provider_panel(spec: ProviderPanel, thresholds: Thresholds) -> Panel:
    """The panel with one threshold override per provider that has one of its quantities."""
    rising = ("warning", "target") if spec.higher_is_better else ("target", "warning")
    colors = BAD_TO_GOOD if spec.higher_is_better else GOOD_TO_BAD
    overrides, specs = [], []
    for provider, quantities in thresholds.model.providers.items():
        quantity = next((q for q in spec.quantities if q in quantities), None)
        if quantity is not None:
            key = f"providers.{provider}.{quantity}"
            overrides.append(threshold_override(provider, levels(thresholds, key, rising, colors)))
            text = spec_text(thresholds, key, spec.unit, higher_is_better=spec.higher_is_better)
            specs.append(f"{provider}: {text.removeprefix('Spec: ').rstrip('.')}")
    spec_part = (
        f"Spec per provider (the others have no threshold): {'; '.join(specs)}." if specs else "No spec threshold."
    )
    minimum, maximum = (0, 1) if spec.ratio else (None, None)
    if spec.trend:
        panel = timeseries(
            spec.title,
            f"{spec.description} {spec_part}",
            [target(spec.expr, "{{service}}")],
            unit=spec.unit,
            draw_thresholds=bool(overrides),
            minimum=minimum,
            maximum=maximum,
        )
    else:
        panel = stat(
            spec.title,
            f"{spec.description} {spec_part} {OVER_RANGE}",
            [target(spec.expr, "{{service}}", instant=True)],
            unit=spec.unit,
            decimals=1 if spec.ratio else 2,
            minimum=minimum,
            maximum=maximum,
        )
    panel["fieldConfig"]["overrides"] = overrides
    return panel


def external_apis(thresholds: Thresholds) -> dict:
    """The dashboard model."""
    board = Board(
        "otel-monitor-external-apis",
        "External APIs",
        "Calls to the paid providers (Gemini, Stability AI, D-ID, YouTube): outcomes, latency, retries and the "
        "spec's per-provider targets.",
        "external-apis",
        [query_variable("service", "Provider", CALLS, "service")],
    )
    board.row("All providers (filter: $service)")
    whole = rate(_calls())

    def rate_share(*part: str) -> str:
        return share(rate(_calls(*part)), whole, "service")

    for title, description, part in (
        (
            "Success rate",
            "Calls whose outcome is success, of all calls, per provider. Per-provider targets are on the provider "
            "rows below.",
            SUCCESS,
        ),
        (
            "Error rate",
            "Calls that failed (outcome error or timeout), of all calls. Partial failures are counted apart "
            "(Partial-failure rate).",
            FAILED,
        ),
    ):
        board.add(
            timeseries(
                title, description, [target(rate_share(part), "{{service}}")], unit="percentunit", minimum=0, maximum=1
            ),
            12,
            8,
        )
    buckets = rate(selector(BUCKETS, SERVICES))
    board.add(
        timeseries(
            "Latency P50 / P90 / P99",
            "Duration of a whole provider call, retries included, all outcomes. Exemplars (dots) open the trace in "
            "Jaeger.",
            [
                target(quantile(q, buckets, "service"), f"{{{{service}}}} p{q * 100:g}", exemplar=True)
                for q in (0.5, 0.9, 0.99)
            ],
            unit="s",
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Calls by outcome",
            "Provider calls per second by outcome.",
            [target(total(whole, "service, outcome"), "{{service}} {{outcome}}")],
            unit="reqps",
            fill=20,
            stacked=True,
        ),
        12,
        8,
    )
    errors = over_range(selector(PromNames.ERRORS, SERVICES))
    board.add(
        bargauge(
            "Top error codes",
            f"The ten most frequent error codes of calls that did not succeed. {OVER_RANGE}",
            [target(f"topk(10, {total(errors, 'service, error_code')})", "{{service}} {{error_code}}", instant=True)],
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Retries per request",
            "Retried attempts per logical call (a call retried twice counts 2).",
            [target(share(rate(selector(PromNames.RETRIES, SERVICES)), whole, "service"), "{{service}}")],
        ),
        12,
        8,
    )
    for title, description, part in (
        (
            "Partial-failure rate",
            "Calls that returned only some of their items (Stability: fewer images than requested), of all calls.",
            'outcome="partial_failure"',
        ),
        ("Timeout rate", "Calls that timed out, of all calls (D-ID's spec metric).", 'outcome="timeout"'),
    ):
        board.add(
            timeseries(
                title, description, [target(rate_share(part), "{{service}}")], unit="percentunit", minimum=0, maximum=1
            ),
            12,
            8,
        )

    # One row per provider selected in $service: the same panels, each with that provider's thresholds.
    board.row("Provider: $service", repeat="service")
    for spec in PROVIDER_PANELS:
        board.add(_provider_panel(spec, thresholds), 4, 5)
    board.add(
        logs(
            "$service failed calls (log)",
            "The backend's log lines of $service's calls that failed, newest first, from VictoriaLogs: outcome, "
            "error code, retries and the trace_id, which opens the call's trace in Jaeger.",
            [logs_target(FAILED_CALL_LINES)],
        ),
        24,
        8,
    )
    return board.model()

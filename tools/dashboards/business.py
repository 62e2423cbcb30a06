"""The Business dashboard: video projects started, their success rate, failures, generation time, active users."""

from __future__ import annotations

from otel_monitor.instrument.metrics import PromNames
from otel_monitor.monitor.alerting.thresholds import Thresholds
from tools.dashboards.grafana import BAD_TO_GOOD, GOOD_TO_BAD, Board, levels, spec_text, stat, target, timeseries
from tools.dashboards.promql import over_range, quantile, rate, selector, share, total

__all__ = ["OVER_RANGE", "business"]

# What a stat counting over the range says of its number.
OVER_RANGE = (
    "Over the selected time range, summed over every process; counts are exact (a series born in the range "
    "counts from zero)."
)
SUCCESS = 'outcome="success"'


def business(thresholds: Thresholds) -> dict:
    """The dashboard model."""
    success_rate = "business.project_success_rate"
    generation = "business.project_generation_seconds"
    success_steps = levels(thresholds, success_rate, ("warning", "target"), BAD_TO_GOOD)
    generation_steps = levels(thresholds, generation, ("target", "warning"), GOOD_TO_BAD)
    success_spec = spec_text(thresholds, success_rate, "percentunit", higher_is_better=True)
    generation_spec = spec_text(thresholds, generation, "s", higher_is_better=False)
    completed = PromNames.PROJECTS_COMPLETED
    duration_sum = selector(f"{PromNames.PROJECT_DURATION}_sum", SUCCESS)
    duration_count = selector(f"{PromNames.PROJECT_DURATION}_count", SUCCESS)
    buckets = rate(selector(f"{PromNames.PROJECT_DURATION}_bucket", SUCCESS))

    board = Board(
        "otel-monitor-business",
        "Business",
        "Video projects: started, success rate, failures, generation time and active users, with the spec's "
        "business targets.",
        "business",
    )
    board.row("Video projects")
    board.add(
        stat(
            "Projects started",
            f"Projects started. {OVER_RANGE}",
            [target(total(over_range(PromNames.PROJECTS_STARTED)), instant=True)],
            decimals=0,
        ),
        4,
        5,
    )
    board.add(
        stat(
            "Project success rate",
            f"Finished projects that produced their video. {success_spec} {OVER_RANGE}",
            [target(share(over_range(selector(completed, SUCCESS)), over_range(completed)), instant=True)],
            unit="percentunit",
            decimals=1,
            thresholds=success_steps,
            minimum=0,
            maximum=1,
        ),
        5,
        5,
    )
    board.add(
        stat(
            "Projects failed",
            f"Finished projects that failed. {OVER_RANGE}",
            [target(total(over_range(selector(completed, 'outcome="failure"'))), instant=True)],
            decimals=0,
            thresholds=(("green", None), ("red", 1)),
        ),
        5,
        5,
    )
    board.add(
        stat(
            "Average generation time",
            f"Mean time from start to finished video, successful projects. {generation_spec} {OVER_RANGE}",
            [target(f"{total(over_range(duration_sum))}\n/\n{total(over_range(duration_count))}", instant=True)],
            unit="s",
            decimals=1,
            thresholds=generation_steps,
        ),
        5,
        5,
    )
    board.add(
        stat(
            "Active users today",
            "Distinct users today (UTC). One process exports the gauge; max, not sum, so a second exporter never "
            "doubles it.",
            [target(f"max({PromNames.ACTIVE_USERS})", instant=True)],
            decimals=0,
        ),
        5,
        5,
    )
    board.add(
        timeseries(
            "Projects started and finished",
            "Projects per second.",
            [
                target(total(rate(PromNames.PROJECTS_STARTED)), "started"),
                target(total(rate(completed), "outcome"), "finished {{outcome}}"),
            ],
            unit="reqps",
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Project success rate",
            success_spec,
            [target(share(rate(selector(completed, SUCCESS)), rate(completed)), "success rate")],
            unit="percentunit",
            thresholds=success_steps,
            draw_thresholds=True,
            minimum=0,
            maximum=1,
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Generation time",
            f"Successful projects. {generation_spec.replace('Spec:', 'Spec for the mean:')}",
            [
                target(quantile(0.5, buckets), "p50", exemplar=True),
                target(quantile(0.9, buckets), "p90", exemplar=True),
                target(f"{total(rate(duration_sum))}\n/\n{total(rate(duration_count))}", "mean", exemplar=True),
            ],
            unit="s",
            thresholds=generation_steps,
            draw_thresholds=True,
        ),
        12,
        8,
    )
    drop = thresholds.literal("business.active_users_day_over_day.warning")
    fall = (
        f" Spec: warn when daily active users fall >{(1 - float(drop)) * 100:g}% three days in a row." if drop else ""
    )
    board.add(
        timeseries(
            "Active users",
            f"Distinct users today (UTC) against the same time of day yesterday.{fall}",
            [
                target(f"max({PromNames.ACTIVE_USERS})", "today"),
                target(f"max({PromNames.ACTIVE_USERS} offset 1d)", "same time yesterday"),
            ],
        ),
        12,
        8,
    )
    return board.model()

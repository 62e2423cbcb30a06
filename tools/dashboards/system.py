"""The System and quotas dashboard: dependencies, hosts, database, Celery, quotas and the monitor's own alerts."""

from __future__ import annotations

from otel_monitor.instrument.metrics import PromNames
from otel_monitor.monitor.alerting.metrics import ACKNOWLEDGED_STATE, SILENCED_STATE, AlertingPromNames
from otel_monitor.monitor.alerting.model import AlertState, Priority
from otel_monitor.monitor.alerting.thresholds import Thresholds
from otel_monitor.monitor.health.metrics import HealthPromNames
from otel_monitor.monitor.quota.metrics import QuotaPromNames
from tools.dashboards.grafana import Board, levels, query_variable, stat, target, timeseries

__all__ = ["system"]

HOSTS = 'host=~"$host"'
# The steps of a quantity that is bad when low (disk free) and of one that is bad when high.
LOW_IS_BAD = ("red", "orange", "green")
HIGH_IS_BAD = ("green", "orange", "red")
# The alert states that count as firing: silenced and acknowledged alerts fire too.
FIRING = "|".join((AlertState.FIRING.value, SILENCED_STATE, ACKNOWLEDGED_STATE))


def system(thresholds: Thresholds) -> dict:
    """The dashboard model."""

    def level(quantity: str, name: str, percent: bool = True) -> str:
        value = float(thresholds.literal(f"{quantity}.{name}") or "nan")
        return f"{value * 100:g} %" if percent else f"{value:g}"

    def rising(quantity: str) -> tuple:
        return levels(thresholds, quantity, ("warning", "critical"), HIGH_IS_BAD)

    board = Board(
        "otel-monitor-system",
        "System and quotas",
        "The backend's dependencies as the monitor's health checks see them (database, Redis, Celery, disk, FFmpeg), "
        "CPU, memory and disk of every backend host, PostgreSQL connections and the providers' quotas, against the "
        "spec's system thresholds, and the monitor's own alerts and notifications.",
        "system",
        [query_variable("host", "Host", PromNames.HOST_CPU_USAGE, "host", all_value=".*")],
    )
    board.row("Dependencies (the monitor's health checks)")
    status_names = {"0": "healthy", "1": "degraded", "2": "unhealthy"}
    board.add(
        stat(
            "Check status",
            "Each check's last status: healthy, degraded or unhealthy (unhealthy is a P0 alert).",
            [target(f"max by (check) ({HealthPromNames.STATUS})", "{{check}}", instant=True)],
            unit="none",
            decimals=0,
            thresholds=(("green", None), ("orange", 1), ("red", 2)),
            mappings=[
                {
                    "type": "value",
                    "options": {
                        value: {"text": text, "index": i} for i, (value, text) in enumerate(status_names.items())
                    },
                }
            ],
        ),
        24,
        5,
    )
    board.add(
        timeseries(
            "Check latency",
            "How long each check took (database > 500 ms and Redis > 100 ms are degraded).",
            [target(f"max by (check) ({HealthPromNames.LATENCY})", "{{check}}")],
            unit="s",
        ),
        12,
        8,
    )
    disk = "system.disk_free"
    board.add(
        timeseries(
            "Disk free per host",
            "Free share of each backend host's file systems (one line per host and mount point): warning below "
            f"{level(disk, 'warning')}, critical (P0) below {level(disk, 'critical')}.",
            [target(f"min by (host, path) ({PromNames.HOST_DISK_FREE}{{{HOSTS}}})", "{{host}} {{path}}")],
            unit="percentunit",
            thresholds=levels(thresholds, disk, ("critical", "warning"), LOW_IS_BAD),
            draw_thresholds=True,
            minimum=0,
            maximum=1,
        ),
        12,
        8,
    )

    board.row("Hosts and database")
    for title, what, series, quantity in (
        ("CPU per host", "CPU busy share of", PromNames.HOST_CPU_USAGE, "system.cpu_usage"),
        (
            "Memory per host",
            "Memory not available to new processes on",
            PromNames.HOST_MEMORY_USAGE,
            "system.memory_usage",
        ),
    ):
        board.add(
            timeseries(
                title,
                f"{what} each backend host (one line per host): warning above {level(quantity, 'warning')}, "
                f"critical above {level(quantity, 'critical')}.",
                [target(f"max by (host) ({series}{{{HOSTS}}})", "{{host}}")],
                unit="percentunit",
                thresholds=rising(quantity),
                draw_thresholds=True,
                minimum=0,
                maximum=1,
            ),
            8,
            8,
        )
    connections = "system.database_connections"
    board.add(
        timeseries(
            "PostgreSQL connections",
            f"Open connections on the checked PostgreSQL: warning above {level(connections, 'warning', False)}, "
            f"critical above {level(connections, 'critical', False)}.",
            [target(f"max({HealthPromNames.DATABASE_CONNECTIONS})", "connections")],
            thresholds=rising(connections),
            draw_thresholds=True,
            minimum=0,
        ),
        8,
        8,
    )

    board.row("Celery")
    queue = "system.celery_queue_length"
    board.add(
        timeseries(
            "Queue length",
            f"Tasks waiting in the broker: warning above {level(queue, 'warning', False)} (P1), critical above "
            f"{level(queue, 'critical', False)}.",
            [target(f"max({HealthPromNames.CELERY_QUEUE_LENGTH})", "waiting")],
            thresholds=rising(queue),
            draw_thresholds=True,
            minimum=0,
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Workers",
            "Workers consuming the queues (none is a P0 alert).",
            [target(f"max({HealthPromNames.CELERY_WORKERS})", "workers")],
            thresholds=(("red", None), ("green", 1)),
            draw_thresholds=True,
            minimum=0,
        ),
        12,
        8,
    )

    board.row("Quotas")
    quota = "all_providers.quota_usage"
    board.add(
        timeseries(
            "Quota used",
            f"Share of each provider's quota used: warning from {level(quota, 'warning')}, critical (P1) from "
            f"{level(quota, 'critical')}.",
            [target(f"max by (service) ({QuotaPromNames.USAGE})", "{{service}}")],
            unit="percentunit",
            thresholds=rising(quota),
            draw_thresholds=True,
            minimum=0,
            maximum=1,
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Time to exhaustion",
            "At the current burn rate, time until each quota runs out (before its reset).",
            [target(f"min by (service) ({QuotaPromNames.TIME_TO_EXHAUSTION})", "{{service}}")],
            unit="s",
            minimum=0,
        ),
        12,
        8,
    )

    board.add(
        timeseries(
            "Per-model limits used (Gemini)",
            f"Share of each Gemini model's limits used (requests and input tokens per minute, requests per day) as "
            f"counted across the backend's processes: warning from {level(quota, 'warning')}, critical (P1, requests "
            f"per day) from {level(quota, 'critical')}.",
            [
                target(
                    f'max by (model, limit) ({QuotaPromNames.MODEL_USAGE}{{service="gemini"}})', "{{model}} {{limit}}"
                )
            ],
            unit="percentunit",
            thresholds=rising(quota),
            draw_thresholds=True,
            minimum=0,
        ),
        12,
        8,
    )
    expiry = "providers.d-id.credits_expiry_days"
    board.add(
        timeseries(
            "Credits expiring",
            "Days until the nearest unspent credits expire (D-ID's credit packs): P1 below "
            f"{level(expiry, 'critical', False)} days.",
            [target(f"min by (service) ({QuotaPromNames.CREDITS_EXPIRY}) / 86400", "{{service}}")],
            unit="d",
            thresholds=levels(thresholds, expiry, ("critical",), ("red", "green")),
            draw_thresholds=True,
            minimum=0,
        ),
        12,
        8,
    )

    board.row("Alerts and notifications (the monitor's own metrics)")
    alerts = AlertingPromNames.ALERTS
    board.add(
        stat(
            "Firing alerts by priority",
            f"Alerts firing now, by priority, silenced and acknowledged ones included ({alerts}: an alert that "
            "resolves reads 0, then its series ends). P0 pages at once; P1 goes to the digest; P2 to the daily "
            "summary.",
            [
                target(f'sum({alerts}{{state=~"{FIRING}", priority="{p.value}"}}) or vector(0)', p.value, instant=True)
                for p in Priority
            ],
            unit="none",
            decimals=0,
            thresholds=(("green", None), ("red", 1)),
            mappings=[],
            text_mode="value_and_name",
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "Notifications by channel and result",
            "Delivery attempts per channel: delivered, retry (the receiver failed, tried again later) or failed "
            "(refused, or given up after retries).",
            [
                target(
                    f"sum by (channel, result) (increase({AlertingPromNames.NOTIFICATIONS}[$__rate_interval]))",
                    "{{channel}} {{result}}",
                )
            ],
            unit="none",
            decimals=0,
            draw="bars",
            fill=60,
            stacked=True,
            minimum=0,
        ),
        16,
        8,
    )
    board.add(
        timeseries(
            "Active alerts by rule",
            f"Every pending or firing alert, one line per rule, priority and state ({alerts} > 0; a line ends when "
            "its alert resolves).",
            [target(f"sum by (rule, priority, state) ({alerts} > 0)", "{{priority}} {{rule}} ({{state}})")],
            unit="none",
            decimals=0,
            minimum=0,
            line_interpolation="stepAfter",
        ),
        24,
        8,
    )
    return board.model()

"""The P2 daily summary: one day's ``daily_summary`` statistics (Prometheus), the quota used in it (the
quota store), system performance (Prometheus), spend per provider (Prometheus) and per project (the backend's Redis)
and the day's alerts, P2 warnings included (the alert store)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
import json
import math
import re
import statistics as stats_math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from otel_monitor._utc_time import iso_utc, known_time_zone, utc_now
from otel_monitor.instrument.costs import COST_CURRENCY, CompletedProject
from otel_monitor.instrument.host_metrics import HOST_CPU_PEAK, HOST_DISK_FREE_LOWEST, HOST_MEMORY_PEAK
from otel_monitor.instrument.metrics import HostLabel, Outcome, PromNames
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.links import trace_link
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority, Rule
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.state import AlertEpisode
from otel_monitor.monitor.health.metrics import HealthPromNames
from otel_monitor.monitor.quota.day_windows import WindowPeak

__all__ = [
    "DailySummary",
    "DailySummaryConfig",
    "daily_increase",
    "next_send_time",
    "summary_notification",
    "alert_entries",
    "quota_usage",
    "spend",
    "lower_is_worse",
    "SUMMARY_MESSAGE",
    "SUMMARY_ERROR_CODE",
]

SUMMARY_MESSAGE = "Daily Summary Report"
SUMMARY_ERROR_CODE = "DAILY_SUMMARY"
_UTC = dt.UTC


class DailySummaryConfig(BaseModel):
    """When and where the summary is made: local send time and zone, Prometheus, the reports dir."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    send_time: dt.time = dt.time(8, 0)
    timezone: str = "UTC"
    prometheus_url: str = "http://localhost:9090"
    # A PromQL label matcher added to every selector, e.g. ``job="video-worker"``.
    matchers: str = ""
    reports_dir: Path = Path("reports")
    top_errors: int = Field(5, ge=0, le=100)
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    # Days before the last one due whose summary is made at start when missing (the monitor was down at send time).
    catch_up_days: int = Field(7, ge=0, le=90)

    _known_zone = field_validator("timezone")(known_time_zone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def day_bounds(day: dt.date, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """Local midnight to the next local midnight (23 or 25 hours on DST days)."""
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(_UTC), end.astimezone(_UTC)


def next_send_time(now: dt.datetime, send_time: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """The next moment after ``now`` that is ``send_time`` in ``zone``, in UTC."""
    local = now.astimezone(zone)
    candidate = dt.datetime.combine(local.date(), send_time, zone)
    if candidate <= local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), send_time, zone)
    return candidate.astimezone(_UTC)


def daily_increase(metric: str, by: Iterable[str], window_seconds: int, matchers: str = "") -> str:
    """How much a counter grew in the window ending at the query time, summed across instances.

    ``increase()`` misses the first value of a series born inside the window (a new process) and extrapolates,
    so each series counts end minus its value just before the window (0 if it did not exist then); a series
    that reset inside the window falls back to ``increase()``.
    """
    selector = f"{metric}{{{matchers}}}"
    window = f"{window_seconds}s"
    grown = (
        f"(last_over_time({selector}[{window}]) - (last_over_time({selector}[5m] offset {window})"
        f" or last_over_time({selector}[{window}]) * 0))"
    )
    per_series = f"({grown} unless (resets({selector}[{window}]) > 0)) or increase({selector}[{window}])"
    labels = ", ".join(by)
    return f"sum by ({labels}) ({per_series})" if labels else f"sum ({per_series})"


def _round(value: float | None, digits: int = 1) -> int | float | None:
    if value is None:
        return None
    value = round(float(value), digits)
    return int(value) if value.is_integer() else value


def _rate(part: float, whole: float) -> int | float | None:
    return _round(100 * part / whole) if whole else None


def summary_notification(line: dict) -> Notification:
    """The P2 notification of one summary; its id is the date, so a day is queued once per channel."""
    stats = line["statistics"]
    day = line["date"]
    rate = stats.get("success_rate")
    spent = stats.get("spend") or {}
    spent_text = f", {spent['total_usd']} {spent['currency']} spent" if spent.get("total_usd") is not None else ""
    dearest = (spent.get("projects") or {}).get("most_expensive")
    if dearest:
        trace = f", trace {dearest['trace_id']}" if dearest.get("trace_id") else ""
        spent_text += (
            f" (most expensive project {dearest['project_id']}: {dearest['cost_usd']} {spent['currency']}{trace})"
        )
    alert = Alert(
        fingerprint=f"daily-summary-{day}",
        rule="daily_summary",
        priority=Priority.P2,
        state=AlertState.FIRING,
        error_code=SUMMARY_ERROR_CODE,
        summary=(
            f"Daily Summary {day}: {stats['total_projects']} projects, {'-' if rate is None else rate}% successful"
            f"{spent_text}"
        ),
        action_required="None: informational report",
        runbook="",
    )
    summary_id = hashlib.sha256(f"daily-summary|{day}".encode()).hexdigest()[:32]
    return Notification(summary_id, "firing", alert, report=line)


# The outermost comparison with a number in a rule's PromQL (the first of them, the shallowest in parentheses: a rule
# of two branches, `(cond[15m] and ...) or (cond[6h] and ...)`, has its threshold one level down): its direction says
# which values are worse.
_COMPARISON = re.compile(r"(<=|>=|<|>)(?:\s*bool)?\s*[-+]?(?:\d|\.\d)")


def lower_is_worse(rule: Rule) -> bool:
    """Whether a lower value of the rule's alerts is worse: a ``< threshold`` PromQL rule (success rates, free
    disk) or a quota check (its value is the share left); otherwise higher is worse (latency, errors, streaks)."""
    if rule.source == "check":
        return rule.expr.strip().startswith("quota.")
    outermost: tuple[int, bool] | None = None
    depth, quote = 0, None
    for index, char in enumerate(rule.expr):
        if quote is not None:
            if char == quote and rule.expr[index - 1] != "\\":
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char in "<>" and (outermost is None or depth < outermost[0]):
            match = _COMPARISON.match(rule.expr, index)
            if match:
                outermost = (depth, match.group(1).startswith("<"))
    return outermost is not None and outermost[1]


def alert_entries(episodes: Iterable[AlertEpisode], rules: Mapping[str, Rule]) -> dict[str, list[dict]]:
    """The day's alerts by priority, one entry per alert (fingerprint): rule, service, error_code, summary, when
    it first fired, when it last resolved (None while still firing), how many times it fired, its worst value."""
    grouped: dict[str, list[AlertEpisode]] = {}
    for episode in episodes:
        grouped.setdefault(episode.alert.fingerprint, []).append(episode)
    entries: dict[str, list[dict]] = {priority.value: [] for priority in Priority}
    for kept in grouped.values():
        kept.sort(key=lambda episode: episode.fired_at)
        last = kept[-1].alert
        rule = rules.get(last.rule)
        lower = rule is not None and lower_is_worse(rule)
        values = [v for e in kept for v in ((e.min_value,) if lower else (e.max_value,)) if v is not None]
        still_firing = last.state is not AlertState.RESOLVED
        entries[last.priority.value].append(
            {
                "rule": last.rule,
                "service": last.service,
                "error_code": last.error_code,
                "summary": last.summary,
                "labels": last.labels,
                "first_fired": iso_utc(kept[0].fired_at),
                "resolved": None if still_firing else iso_utc(last.ends_at),
                "still_firing": still_firing,
                "times_fired": len(kept),
                "worst_value": _round((min(values) if lower else max(values)), 4) if values else None,
            }
        )
    for listed in entries.values():
        listed.sort(key=lambda entry: (entry["first_fired"] or "", entry["rule"]))
    return entries


def quota_usage(peaks: Mapping[str, list[WindowPeak]]) -> dict[str, dict]:
    """Per provider: the quota window of the day that came closest to its limit (used, total, percentage and its
    reset), and every window of the day the same way (two for a quota reset at midnight Pacific)."""
    usage = {}
    for service, windows in peaks.items():
        if not windows:
            continue
        listed = [
            {
                "used": _round(w.used, 2),
                "total": _round(w.total, 2),
                "percentage": _round(w.percentage, 1),
                "window_start": iso_utc(w.window_start),
                "reset_date": iso_utc(w.reset_at),
            }
            for w in windows
        ]
        worst = max(range(len(windows)), key=lambda i: windows[i].percentage)
        usage[service] = {
            **{k: listed[worst][k] for k in ("used", "total", "percentage", "reset_date")},
            "windows": listed,
        }
    return usage


# Cents of cents: a call can cost a fraction of a cent (a few thousand tokens).
_USD_DIGITS = 6


def spend(
    providers: Iterable[tuple[Mapping[str, str], float]],
    projects: Iterable[CompletedProject] | None,
    jaeger_url: str | None = None,
) -> dict:
    """The day's spend (USD, by the backend's price table): in total and per provider (what its calls cost), and
    per completed project: how many, their total, average and P90 (linear interpolation), and the most expensive
    one with its trace (and its Jaeger link when ``jaeger_url`` is given); ``projects`` is None when unknown."""
    by_provider: dict[str, float] = {}
    for labels, value in providers:
        service = labels.get("service", "")
        by_provider[service] = by_provider.get(service, 0.0) + value
    project_part: dict | None = None
    if projects is not None:
        listed = list(projects)
        costs = sorted(p.cost_usd for p in listed)
        project_part = {"count": len(listed), "total_usd": _round(sum(costs), _USD_DIGITS)}
        if costs:
            p90 = costs[0] if len(costs) == 1 else stats_math.quantiles(costs, n=10, method="inclusive")[8]
            dearest = max(listed, key=lambda p: (p.cost_usd, p.completed_at))
            link = trace_link(jaeger_url, dearest.trace_id) if jaeger_url and dearest.trace_id else None
            project_part |= {
                "average_usd": _round(sum(costs) / len(costs), _USD_DIGITS),
                "p90_usd": _round(p90, _USD_DIGITS),
                "most_expensive": {
                    "project_id": dearest.project_id,
                    "cost_usd": _round(dearest.cost_usd, _USD_DIGITS),
                    "outcome": dearest.outcome,
                    "trace_id": dearest.trace_id,
                    "jaeger_url": link,
                    "completed_at": iso_utc(dearest.completed_at),
                },
            }
        else:
            project_part |= {"average_usd": None, "p90_usd": None, "most_expensive": None}
    return {
        "currency": COST_CURRENCY,
        "total_usd": _round(sum(by_provider.values()), _USD_DIGITS),
        "providers": {s: _round(v, _USD_DIGITS) for s, v in sorted(by_provider.items())},
        "projects": project_part,
    }


QuotaWindows = Callable[[dt.datetime, dt.datetime], Awaitable[Mapping[str, list[WindowPeak]]]]
Episodes = Callable[[dt.datetime, dt.datetime], Awaitable[list[AlertEpisode]]]
CompletedProjects = Callable[[dt.datetime, dt.datetime], Awaitable[list[CompletedProject]]]
# An instant query's answer: each series' labels and value.
_QueryResult = list[tuple[dict, float]]


class DailySummary:
    """Builds, logs (INFO), keeps (``reports_dir/daily-summary-YYYY-MM-DD.json``) and hands over the summary.

    ``quota_windows(start, end)`` gives each provider's stored quota peaks of the day (``quota_windows_between``),
    ``episodes(start, end)`` the alert episodes that fired in it (``AlertStore.episodes_between``),
    ``completed_projects(start, end)`` the projects that completed in it (``ProjectCosts.completed_between`` over
    the backend's Redis; the trace of the most expensive links to ``jaeger_url``), ``rules`` the rules by which the
    worst value of an alert is judged; the HTTP client is injected.
    """

    def __init__(
        self,
        config: DailySummaryConfig = DailySummaryConfig(),
        *,
        quota_windows: QuotaWindows | None = None,
        episodes: Episodes | None = None,
        completed_projects: CompletedProjects | None = None,
        jaeger_url: str | None = None,
        rules: Iterable[Rule] = (),
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        logger: StructuredLogger | None = None,
    ) -> None:
        self.config = config
        self._quota_windows = quota_windows
        self._episodes = episodes
        self._completed_projects = completed_projects
        self._jaeger_url = jaeger_url
        self._rules = {rule.name: rule for rule in rules}
        self._client = client
        self._clock = clock
        self._logger = logger or StructuredLogger("otel_monitor.alerts")

    # -- building -------------------------------------------------------------------------------------------------
    async def build(self, day: dt.date) -> dict:
        """The summary's log line as a dict: message, report_type, date and statistics (up to now for today), plus
        the day's ``alerts`` by priority and its P2 ``warnings``."""
        start, end = day_bounds(day, self.config.zone)
        at = min(end, self._clock())
        window = max(int((at - start).total_seconds()), 1)
        m = self.config.matchers
        selector = f"{{{m}}}"
        bucket_increase = daily_increase(f"{PromNames.CALL_DURATION}_bucket", ("service", "le"), window, m)
        calls, projects, duration_sum, duration_count, errors, costs, *performance = await asyncio.gather(
            self._query(daily_increase(PromNames.CALL_COUNT, ("service", "outcome"), window, m), at),
            self._query(daily_increase(PromNames.PROJECTS_COMPLETED, ("outcome",), window, m), at),
            self._query(daily_increase(f"{PromNames.PROJECT_DURATION}_sum", (), window, m), at),
            self._query(daily_increase(f"{PromNames.PROJECT_DURATION}_count", (), window, m), at),
            self._query(daily_increase(PromNames.ERRORS, ("service", "error_code"), window, m), at),
            self._query(daily_increase(PromNames.COST, ("service",), window, m), at),
            *(self._query(f"histogram_quantile({q}, {bucket_increase})", at) for q in _QUANTILES.values()),
            *(
                self._query(peak.format(selector=selector, window=f"{window}s"), at)
                for peak in (HOST_CPU_PEAK, HOST_MEMORY_PEAK, HOST_DISK_FREE_LOWEST)
            ),
            # The queue length is the monitor's own series: the backend's matchers do not apply.
            self._query(f"max(max_over_time({HealthPromNames.CELERY_QUEUE_LENGTH}[{window}s]))", at),
        )
        statistics = self._statistics(calls, projects, duration_sum, duration_count, errors)
        quota = await self._quota_windows(start, at) if self._quota_windows is not None else {}
        statistics["quota_usage"] = quota_usage(quota)
        statistics["system_performance"] = _system_performance(statistics["api_calls"], *performance)
        statistics["spend"] = spend(costs, await self._projects_completed(start, at), self._jaeger_url)
        episodes = await self._episodes(start, at) if self._episodes is not None else []
        alerts = alert_entries(episodes, self._rules)
        warnings = alerts.pop(Priority.P2.value)
        return {
            "message": SUMMARY_MESSAGE,
            "report_type": "daily_summary",
            "date": day.isoformat(),
            "statistics": statistics,
            "alerts": alerts,
            "warnings": warnings,
        }

    async def _projects_completed(self, start: dt.datetime, end: dt.datetime) -> list[CompletedProject] | None:
        """The projects completed in [start, end); None when they are not known (no Redis, or it did not answer)."""
        if self._completed_projects is None:
            return None
        try:
            return await self._completed_projects(start, end)
        except Exception as exc:
            self._logger.warning("Completed projects could not be read", error_type=type(exc).__name__)
            return None

    def _statistics(
        self,
        calls: _QueryResult,
        projects: _QueryResult,
        duration_sum: _QueryResult,
        duration_count: _QueryResult,
        errors: _QueryResult,
    ) -> dict:
        by_outcome = {labels.get("outcome"): value for labels, value in projects}
        successful = round(by_outcome.get("success", 0.0))
        total = round(sum(by_outcome.values()))
        seconds = sum(value for _, value in duration_sum)
        count = sum(value for _, value in duration_count)
        api_calls: dict[str, dict] = {}
        for labels, value in calls:
            entry = api_calls.setdefault(labels.get("service", ""), {"total": 0, "success": 0})
            entry["total"] += round(value)
            if labels.get("outcome") == Outcome.SUCCESS:
                entry["success"] += round(value)
        for entry in api_calls.values():
            entry["failed"] = entry["total"] - entry["success"]
            entry["success_rate"] = _rate(entry["success"], entry["total"])
        common = sorted(
            (
                (round(value), labels.get("service", ""), labels.get("error_code", ""))
                for labels, value in errors
                if round(value) > 0
            ),
            key=lambda e: (-e[0], e[1], e[2]),
        )
        return {
            "total_projects": total,
            "successful_projects": successful,
            "failed_projects": total - successful,
            "success_rate": _rate(successful, total),
            "average_duration_minutes": _round(seconds / count / 60, 2) if count else None,
            "api_calls": {service: api_calls[service] for service in sorted(api_calls) if api_calls[service]["total"]},
            "most_common_errors": [
                {"error_code": code, "service": service, "count": n}
                for n, service, code in common[: self.config.top_errors]
            ],
        }

    async def _query(self, promql: str, at: dt.datetime) -> _QueryResult:
        params = {"query": promql, "time": f"{at.timestamp():.3f}"}
        url = f"{self.config.prometheus_url.rstrip('/')}/api/v1/query"
        if self._client is not None:
            response = await self._client.get(url, params=params, timeout=self.config.timeout_seconds)
        else:
            async with httpx.AsyncClient() as client:
                response = await client.get(url, params=params, timeout=self.config.timeout_seconds)
        response.raise_for_status()
        body = response.json()
        return [
            (r["metric"], float(r["value"][1])) for r in body["data"]["result"] if not math.isnan(float(r["value"][1]))
        ]

    # -- producing ------------------------------------------------------------------------------------------------
    async def produce(self, day: dt.date) -> Notification:
        """Builds the day's summary, logs it at INFO, writes the report file and returns the P2 notification."""
        notification, report = await self._made(day)
        await asyncio.to_thread(self._write, report)
        return notification

    async def _made(self, day: dt.date) -> tuple[Notification, dict]:
        """The day's summary notification, logged, and the report it carries."""
        line = await self.build(day)
        self._logger.info(
            SUMMARY_MESSAGE,
            report_type="daily_summary",
            date=line["date"],
            statistics=line["statistics"],
            alerts=line["alerts"],
            warnings=line["warnings"],
        )
        return summary_notification(line), line

    def report_path(self, day: dt.date) -> Path:
        return self.config.reports_dir / f"daily-summary-{day.isoformat()}.json"

    def _write(self, line: dict) -> None:
        path = self.report_path(dt.date.fromisoformat(line["date"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(line, indent=2, sort_keys=True))
        partial.replace(path)

    def missed_days(self) -> list[dt.date]:
        """Days whose summary was due and is not in ``reports_dir``, after the newest one that is (at most
        ``catch_up_days`` + 1 of them, oldest first). None on a monitor that never made a summary: nothing was
        missed before it ran."""
        zone = self.config.zone
        now = self._clock()
        last_sent = next_send_time(now - dt.timedelta(days=1), self.config.send_time, zone)
        if last_sent > now:  # today's send time has not come yet: the day before yesterday's is the last due
            last_sent = next_send_time(now - dt.timedelta(days=2), self.config.send_time, zone)
        last_due = last_sent.astimezone(zone).date() - dt.timedelta(days=1)
        kept = sorted(filter(None, (_report_date(p) for p in self.config.reports_dir.glob("daily-summary-*.json"))))
        if not kept:
            return []
        first = max(kept[-1] + dt.timedelta(days=1), last_due - dt.timedelta(days=self.config.catch_up_days))
        return [first + dt.timedelta(days=n) for n in range((last_due - first).days + 1)]

    async def _hand_over(self, day: dt.date, send: Callable[[Notification], Awaitable[object] | object]) -> None:
        """Makes the day's summary and hands it to ``send``; the report file is kept only once it is handed over, so
        a day whose hand-over failed is made again at the next start."""
        try:
            notification, report = await self._made(day)
            result = send(notification)
            if inspect.isawaitable(result):
                await result
            await asyncio.to_thread(self._write, report)
        except Exception as exc:
            self._logger.error("Daily summary failed", date=day.isoformat(), error_type=type(exc).__name__)

    async def run(
        self,
        send: Callable[[Notification], Awaitable[object] | object],
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """Makes the summaries missed while the monitor was down, then, at each send time, summarises the local
        day that just ended and hands it to ``send``; until cancelled."""
        try:
            missed = await asyncio.to_thread(self.missed_days)
        except Exception as exc:
            self._logger.error("Daily summaries missed while down could not be listed", error_type=type(exc).__name__)
            missed = []
        for day in missed:
            self._logger.info("Daily summary missed while the monitor was down; making it now", date=day.isoformat())
            await self._hand_over(day, send)
        zone = self.config.zone
        while True:
            due = next_send_time(self._clock(), self.config.send_time, zone)
            await sleep(max((due - self._clock()).total_seconds(), 0.0))
            await self._hand_over(due.astimezone(zone).date() - dt.timedelta(days=1), send)


_QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def _report_date(path: Path) -> dt.date | None:
    """The day of a kept report file, None for another file matching the pattern (an operator's copy)."""
    try:
        return dt.date.fromisoformat(path.stem.removeprefix("daily-summary-"))
    except ValueError:
        return None


def _system_performance(
    api_calls: Mapping[str, dict],
    p50: _QueryResult,
    p90: _QueryResult,
    p99: _QueryResult,
    cpu: _QueryResult,
    memory: _QueryResult,
    disk: _QueryResult,
    queue: _QueryResult,
) -> dict:
    """Per provider P50/P90/P99 (s) and success rate; CPU and memory peaks and the lowest free disk per host (%, and
    per file system); the Celery queue's peak."""
    apis: dict[str, dict] = {service: {"success_rate": calls["success_rate"]} for service, calls in api_calls.items()}
    for name, results in zip(_QUANTILES, (p50, p90, p99), strict=False):
        for labels, value in results:
            apis.setdefault(labels.get("service", ""), {})[f"{name}_seconds"] = _round(value, 3)
    hosts: dict[str, dict] = {}
    for name, results in (("cpu_peak_percent", cpu), ("memory_peak_percent", memory)):
        for labels, value in results:
            hosts.setdefault(labels.get(HostLabel.HOST, ""), {})[name] = _round(100 * value, 1)
    for labels, value in disk:  # one series per host and file system: the host's figure is its fullest one
        host = hosts.setdefault(labels.get(HostLabel.HOST, ""), {})
        by_path = host.setdefault("disk_free_min_percent_by_path", {})
        by_path[labels.get(HostLabel.PATH, "")] = _round(100 * value, 1)
        host["disk_free_min_percent"] = min(by_path.values())
    return {
        "apis": {service: apis[service] for service in sorted(apis)},
        "hosts": {host: hosts[host] for host in sorted(hosts)},
        "celery_queue_peak": round(queue[0][1]) if queue else None,
    }

"""The P2 daily summary: the spec's ``daily_summary`` statistics of one day, from Prometheus and the quota service."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from otel_monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.alerting.notifiers.notification import Notification
from otel_monitor.instruments import Outcome, PromNames
from otel_monitor.structured_logging import StructuredLogger
from otel_monitor.utc_time import known_time_zone

__all__ = ["DailySummary", "DailySummaryConfig", "daily_increase", "next_send_time", "summary_notification",
           "SUMMARY_MESSAGE", "SUMMARY_ERROR_CODE"]

SUMMARY_MESSAGE = "Daily Summary Report"
SUMMARY_ERROR_CODE = "DAILY_SUMMARY"
_UTC = dt.timezone.utc


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

    _known_zone = field_validator("timezone")(known_time_zone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


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
    grown = (f"(last_over_time({selector}[{window}]) - (last_over_time({selector}[5m] offset {window})"
             f" or last_over_time({selector}[{window}]) * 0))")
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
    alert = Alert(
        fingerprint=f"daily-summary-{day}", rule="daily_summary", priority=Priority.P2, state=AlertState.FIRING,
        error_code=SUMMARY_ERROR_CODE,
        summary=f"Daily Summary {day}: {stats['total_projects']} projects, "
                f"{'-' if rate is None else rate}% successful",
        action_required="None: informational report", runbook="")
    summary_id = hashlib.sha256(f"daily-summary|{day}".encode()).hexdigest()[:32]
    return Notification(summary_id, "firing", alert, report=line)


class DailySummary:
    """Builds, logs (INFO), keeps (``reports_dir/daily-summary-YYYY-MM-DD.json``) and hands over the summary.

    ``quota`` returns the quota service's latest views (``QuotaService.latest``); the HTTP client is injected.
    """

    def __init__(self, config: DailySummaryConfig = DailySummaryConfig(), *,
                 quota: Callable[[], Iterable] | None = None, client: httpx.AsyncClient | None = None,
                 clock: Callable[[], dt.datetime] = _utcnow, logger: StructuredLogger | None = None) -> None:
        self.config = config
        self._quota = quota or (lambda: ())
        self._client = client
        self._clock = clock
        self._logger = logger or StructuredLogger("otel_monitor.alerts")

    # -- building -------------------------------------------------------------------------------------------------
    async def build(self, day: dt.date) -> dict:
        """The spec's log line as a dict: message, report_type, date and statistics (up to now for today)."""
        start, end = day_bounds(day, self.config.zone)
        at = min(end, self._clock())
        window = max(int((at - start).total_seconds()), 1)
        m = self.config.matchers
        calls, projects, duration_sum, duration_count, errors = await asyncio.gather(
            self._query(daily_increase(PromNames.CALL_COUNT, ("service", "outcome"), window, m), at),
            self._query(daily_increase(PromNames.PROJECTS_COMPLETED, ("outcome",), window, m), at),
            self._query(daily_increase(f"{PromNames.PROJECT_DURATION}_sum", (), window, m), at),
            self._query(daily_increase(f"{PromNames.PROJECT_DURATION}_count", (), window, m), at),
            self._query(daily_increase(PromNames.ERRORS, ("service", "error_code"), window, m), at),
        )
        return {"message": SUMMARY_MESSAGE, "report_type": "daily_summary", "date": day.isoformat(),
                "statistics": self._statistics(calls, projects, duration_sum, duration_count, errors)}

    def _statistics(self, calls, projects, duration_sum, duration_count, errors) -> dict:
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
        common = sorted(((round(value), labels.get("service", ""), labels.get("error_code", ""))
                         for labels, value in errors if round(value) > 0), key=lambda e: (-e[0], e[1], e[2]))
        return {
            "total_projects": total,
            "successful_projects": successful,
            "failed_projects": total - successful,
            "success_rate": _rate(successful, total),
            "average_duration_minutes": _round(seconds / count / 60, 2) if count else None,
            "api_calls": {service: api_calls[service] for service in sorted(api_calls)
                          if api_calls[service]["total"]},
            "quota_usage": self._quota_usage(),
            "most_common_errors": [{"error_code": code, "service": service, "count": n}
                                   for n, service, code in common[: self.config.top_errors]],
        }

    def _quota_usage(self) -> dict:
        usage = {}
        for view in self._quota():
            usage[view.service] = {"used": _round(view.used, 2), "total": _round(view.total, 2),
                                   "percentage": _round(view.percentage, 1)}
        return usage

    async def _query(self, promql: str, at: dt.datetime) -> list[tuple[dict, float]]:
        params = {"query": promql, "time": f"{at.timestamp():.3f}"}
        url = f"{self.config.prometheus_url.rstrip('/')}/api/v1/query"
        if self._client is not None:
            response = await self._client.get(url, params=params, timeout=self.config.timeout_seconds)
        else:
            async with httpx.AsyncClient() as client:
                response = await client.get(url, params=params, timeout=self.config.timeout_seconds)
        response.raise_for_status()
        body = response.json()
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    # -- producing ------------------------------------------------------------------------------------------------
    async def produce(self, day: dt.date) -> Notification:
        """Builds the day's summary, logs it at INFO, writes the report file and returns the P2 notification."""
        line = await self.build(day)
        self._logger.info(SUMMARY_MESSAGE, report_type="daily_summary", date=line["date"],
                          statistics=line["statistics"])
        await asyncio.to_thread(self._write, line)
        return summary_notification(line)

    def report_path(self, day: dt.date) -> Path:
        return self.config.reports_dir / f"daily-summary-{day.isoformat()}.json"

    def _write(self, line: dict) -> None:
        path = self.report_path(dt.date.fromisoformat(line["date"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(line, indent=2, sort_keys=True))
        partial.replace(path)

    async def run(self, send: Callable[[Notification], Awaitable[object] | object], *,
                  sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """At each send time, summarises the local day that just ended and hands it to ``send``; until cancelled."""
        zone = self.config.zone
        while True:
            due = next_send_time(self._clock(), self.config.send_time, zone)
            await sleep(max((due - self._clock()).total_seconds(), 0.0))
            day = due.astimezone(zone).date() - dt.timedelta(days=1)
            try:
                result = send(await self.produce(day))
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - one failed day must not stop the next
                self._logger.error("Daily summary failed", date=day.isoformat(), error_type=type(exc).__name__)

"""The daily summary's sections from the stores: quota used in the day (peaks per quota window, not the send-time
reading), the day's alerts and P2 warnings with their worst values, and the days a stopped monitor missed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from types import SimpleNamespace

import pytest

from otel_monitor.monitor.alerting.delivery.daily_summary import (
    DailySummary,
    DailySummaryConfig,
    alert_entries,
    lower_is_worse,
    quota_usage,
)
from otel_monitor.monitor.alerting.model import AlertState, Priority, Rule
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.monitor.alerting.state import AlertStore
from otel_monitor.monitor.quota.day_windows import quota_windows_between, window_peaks
from otel_monitor.monitor.quota.reset_schedule import ResetRule
from otel_monitor.monitor.quota.store import QuotaStore, UsageSample
from tests.support.alerts import make_alert
from tests.support.clocks import Clock

UTC = dt.UTC
DAY = dt.date(2026, 3, 1)
DAY_START = dt.datetime(2026, 3, 1, tzinfo=UTC)
DAY_END = DAY_START + dt.timedelta(days=1)
PACIFIC = ResetRule.daily(zone="America/Los_Angeles")  # 08:00Z in March before DST (PST)


def at(hours: float) -> dt.datetime:
    return DAY_START + dt.timedelta(hours=hours)


def sample(hours: float, used: float, total: float) -> UsageSample:
    return UsageSample(service="q", timestamp=at(hours), used=used, total=total, percentage=100 * used / total)


@pytest.mark.parametrize(
    ("rule", "samples", "expected"),
    [
        pytest.param(
            ResetRule.daily(),
            [sample(10, 100, 1000), sample(20, 300, 1000), sample(31, 5, 1000)],
            [(DAY_START, DAY_END, 300)],
            id="utc-daily-one-window-next-morning-ignored",
        ),
        pytest.param(
            PACIFIC,
            [
                sample(3, 9000, 10000),
                sample(7.99, 9500, 10000),
                sample(9, 100, 10000),
                sample(23, 4000, 10000),
                sample(32, 10, 10000),
            ],
            [(at(-16), at(8), 9500), (at(8), at(32), 4000)],
            id="pacific-two-windows",
        ),
        pytest.param(
            ResetRule.never(),
            [sample(10, 20, 100), sample(15, 70, 100), sample(16, 60, 100)],
            [(None, None, 70)],
            id="never-resets-peak",
        ),
        pytest.param(
            ResetRule.monthly(),
            [sample(-1, 40, 100), sample(12, 41, 100)],
            [(dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 4, 1, tzinfo=UTC), 41)],
            id="monthly-day-before-ignored",
        ),
    ],
)
def test_window_peaks(rule, samples, expected):
    """Each quota window overlapping the day gives its highest stored use in the day, with its start and reset."""
    peaks = window_peaks(samples, rule, DAY_START, DAY_END)
    assert [(p.window_start, p.reset_at, p.used) for p in peaks] == expected


def test_quota_usage_names_the_fullest_window():
    """The provider's figure is its fullest window of the day, and every window is listed."""
    peaks = {
        "youtube": window_peaks([sample(7, 9500, 10000), sample(20, 4000, 10000)], PACIFIC, DAY_START, DAY_END),
        "gemini": [],
    }
    usage = quota_usage(peaks)
    assert set(usage) == {"youtube"}
    assert (usage["youtube"]["used"], usage["youtube"]["percentage"], usage["youtube"]["reset_date"]) == (
        9500,
        95,
        "2026-03-01T08:00:00Z",
    )
    assert [w["used"] for w in usage["youtube"]["windows"]] == [9500, 4000]


RULES = {rule.name: rule for rule in load_rules("config/alert-rules.yaml", promtool=None)}


@pytest.mark.parametrize(
    ("expr", "source", "lower"),
    [
        ("histogram_quantile(0.5, sum by (service, le) (rate(x_bucket[15m]))) > 5", "promql", False),
        ("sum(rate(ok[15m])) / sum(rate(all[15m])) < 0.9 and sum(increase(all[15m])) >= 10", "promql", True),
        (
            "(sum(rate(ok[15m])) / sum(rate(all[15m])) < 0.9 and sum(increase(all[15m])) >= 10) or (sum(rate(ok[6h]))"
            " / sum(rate(all[6h])) < 0.9 and sum(increase(all[6h])) >= 10 unless sum(increase(all[15m])) >= 10)",
            "promql",
            True,
        ),
        (
            "(histogram_quantile(0.5, sum by (le) (rate(x_bucket[15m]))) > 5 and sum(increase(x_count[15m])) >= 10) or"
            " (histogram_quantile(0.5, sum by (le) (rate(x_bucket[6h]))) > 5 and sum(increase(x_count[6h])) >= 10)",
            "promql",
            False,
        ),
        ('min(free_ratio{path=~"/a|/b"}) < 0.20 >= 0.10', "promql", True),
        ("max by (service) (quota_usage_ratio) >= 0.8 <= 0.9", "promql", False),
        ('max(queue{queue="<celery>"}) > 50', "promql", False),
        ("quota.gemini", "check", True),
        ("streak.* > 5", "check", False),
        ("health.disk", "check", False),
    ],
)
def test_lower_is_worse(expr, source, lower):
    """A rule's first top-level comparison says which values are worse; a quota check's value is the share left."""
    rule = Rule(
        name="R",
        priority=Priority.P2,
        source=source,
        expr=expr,
        error_code="X",
        summary="s",
        action_required="a",
        runbook="r",
    )
    assert lower_is_worse(rule) is lower


@pytest.mark.parametrize(
    ("name", "lower"),
    [
        ("StabilitySuccessRateLow", True),
        ("ProjectSuccessRateLow", True),
        ("YoutubeTokenRefreshFailing", True),
        ("DiskSpaceLow", True),
        ("ApiErrorRateHigh", False),
        ("GeminiLatencyP99High", False),
        ("ProjectGenerationSlow", False),
        ("DIdTimeoutsHigh", False),
    ],
)
def test_shipped_rules_know_which_values_are_worse(name, lower):
    """The shipped rules, low-traffic fallback branches and all, say the right direction: a success rate is worse
    lower, an error rate, latency or duration higher."""
    assert lower_is_worse(RULES[name]) is lower


@pytest.fixture
def alert_store(tmp_path):
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    yield store
    store.close()


def _episode(store: AlertStore, clock: Clock, alert, values: list[tuple[float, float]], ends: float | None):
    """Writes one episode: pending at the first time, firing from the second, one value per (hour, value)."""
    starts = at(values[0][0])
    for index, (hours, value) in enumerate(values):
        clock.now = at(hours)
        state = AlertState.PENDING if index == 0 and len(values) > 1 else AlertState.FIRING
        store.upsert(alert.with_state(state, starts_at=starts, value=value))
    if ends is not None:
        clock.now = at(ends)
        store.upsert(alert.with_state(AlertState.RESOLVED, starts_at=starts, value=values[-1][1], ends_at=at(ends)))


def test_alert_entries_of_the_day(alert_store):
    """Each alert of the day once, by priority: first fired, resolved or still firing, times fired, worst value
    (highest latency, lowest success rate); an episode over before the day and a pending one are not listed."""
    clock = Clock(at(0))
    alert_store._clock = clock
    latency = make_alert(
        fingerprint="lat",
        rule="GeminiLatencyP50High",
        priority=Priority.P2,
        error_code="API_LATENCY_HIGH",
        labels={"service": "gemini", "quantile": "0.5"},
    )
    success = make_alert(
        fingerprint="succ",
        rule="StabilitySuccessRateLow",
        priority=Priority.P2,
        error_code="API_SUCCESS_RATE_LOW",
        labels={"service": "stability"},
    )
    redis = make_alert(
        fingerprint="redis", rule="RedisDown", priority=Priority.P0, error_code="REDIS_CONNECTION_FAILED", labels={}
    )
    _episode(alert_store, clock, latency, [(-5, 9.0)], ends=-4)  # the day before: not listed
    _episode(alert_store, clock, latency, [(10, 5.5), (10.25, 7.5), (10.5, 6.0)], ends=11)
    _episode(alert_store, clock, latency, [(14, 6.2)], ends=None)
    _episode(alert_store, clock, success, [(12, 0.85), (12.5, 0.7), (13, 0.8)], ends=14)
    _episode(alert_store, clock, redis, [(15, 1.0)], ends=15.5)
    clock.now = at(16)
    alert_store.upsert(
        make_alert(
            fingerprint="pend",
            rule="GeminiLatencyP90High",
            priority=Priority.P2,
            state=AlertState.PENDING,
            starts_at=at(16),
            value=12.0,
        )
    )

    entries = alert_entries(alert_store.episodes_between(DAY_START, DAY_END), RULES)
    warnings = {entry["rule"]: entry for entry in entries["P2"]}
    assert set(warnings) == {"GeminiLatencyP50High", "StabilitySuccessRateLow"}
    assert warnings["GeminiLatencyP50High"] == {
        "rule": "GeminiLatencyP50High",
        "service": "gemini",
        "error_code": "API_LATENCY_HIGH",
        "summary": latency.summary,
        "labels": {"service": "gemini", "quantile": "0.5"},
        "first_fired": "2026-03-01T10:15:00Z",
        "resolved": None,
        "still_firing": True,
        "times_fired": 2,
        "worst_value": 7.5,
    }
    assert (
        warnings["StabilitySuccessRateLow"]["worst_value"],
        warnings["StabilitySuccessRateLow"]["resolved"],
        warnings["StabilitySuccessRateLow"]["times_fired"],
    ) == (0.7, "2026-03-01T14:00:00Z", 1)
    assert [(e["rule"], e["resolved"]) for e in entries["P0"]] == [("RedisDown", "2026-03-01T15:30:00Z")]
    assert entries["P1"] == []


@pytest.mark.stack
@pytest.mark.asyncio
async def test_summary_quota_is_the_days_stored_use_not_the_send_time_reading(stack, tmp_path, alert_store):
    """Sent at 08:00 the next day, the summary's quota figures are the peaks stored during the day (YouTube's two
    Pacific windows, Gemini before its reset), not the readings of the morning after the resets, and its
    warnings list the P2 alert of the day."""
    quota = QuotaStore(f"sqlite:///{tmp_path / 'quota.db'}")
    quota.migrate()
    try:
        for service, hours, used, total in [
            ("gemini", 9, 400, 1000),
            ("gemini", 23.5, 870, 1000),
            ("youtube", 7.5, 9600, 10000),
            ("youtube", 21, 3200, 10000),
            ("gemini", 31.9, 12, 1000),
            ("youtube", 31.9, 0, 10000),
        ]:
            quota.add(service, used, total, 100 * used / total, at(hours))
        service = SimpleNamespace(
            store=quota,
            sources={"gemini": SimpleNamespace(rule=ResetRule.daily()), "youtube": SimpleNamespace(rule=PACIFIC)},
        )
        clock = Clock(at(24 + 8))
        alert_store._clock = clock
        _episode(
            alert_store,
            clock,
            make_alert(
                fingerprint="lat", rule="GeminiLatencyP50High", priority=Priority.P2, error_code="API_LATENCY_HIGH"
            ),
            [(10, 6.5)],
            ends=10.5,
        )
        clock.now = at(24 + 8)

        async def episodes(start, end):
            return alert_store.episodes_between(start, end)

        summary = DailySummary(
            DailySummaryConfig(prometheus_url=stack.prometheus_url, reports_dir=tmp_path),
            quota_windows=lambda s, e: quota_windows_between(service, s, e),
            episodes=episodes,
            rules=RULES.values(),
            clock=clock,
        )
        notification = await summary.produce(DAY)
    finally:
        quota.close()
    usage = notification.report["statistics"]["quota_usage"]
    assert (usage["gemini"]["used"], usage["gemini"]["percentage"], usage["gemini"]["reset_date"]) == (
        870,
        87,
        "2026-03-02T00:00:00Z",
    )
    assert (usage["youtube"]["used"], usage["youtube"]["reset_date"]) == (9600, "2026-03-01T08:00:00Z")
    assert [w["used"] for w in usage["youtube"]["windows"]] == [9600, 3200]
    assert [(w["rule"], w["worst_value"]) for w in notification.report["warnings"]] == [("GeminiLatencyP50High", 6.5)]
    kept = json.loads(summary.report_path(DAY).read_text())
    assert kept["statistics"]["quota_usage"] == usage


@pytest.mark.parametrize(
    ("now", "kept", "expected"),
    [
        pytest.param(at(24 + 9), [], [], id="first-run-misses-nothing"),
        pytest.param(at(24 + 9), [DAY], [], id="yesterday-sent"),
        pytest.param(
            at(24 * 3 + 9), [DAY], [DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)], id="down-two-send-times"
        ),
        pytest.param(at(24 * 3 + 7), [DAY], [DAY + dt.timedelta(days=1)], id="before-todays-send-time"),
        pytest.param(
            at(24 * 30 + 9), [DAY], [DAY + dt.timedelta(days=n) for n in range(22, 30)], id="catch-up-bounded"
        ),
    ],
)
def test_missed_days(tmp_path, now, kept, expected):
    """A monitor that was down at send times makes the summaries after its newest one, at most 8 days of them."""
    for day in kept:
        (tmp_path / f"daily-summary-{day.isoformat()}.json").write_text("{}")
    summary = DailySummary(DailySummaryConfig(reports_dir=tmp_path), clock=Clock(now))
    assert summary.missed_days() == expected


@pytest.mark.asyncio
async def test_run_makes_missed_summaries_first(tmp_path):
    """On start the summaries missed while down are produced and sent, oldest first, before waiting for 08:00."""
    (tmp_path / f"daily-summary-{DAY.isoformat()}.json").write_text("{}")
    clock = Clock(at(24 * 3 + 9))
    summary = DailySummary(DailySummaryConfig(reports_dir=tmp_path), clock=clock)
    built: list[dt.date] = []

    async def build(day):
        built.append(day)
        return {
            "message": "Daily Summary Report",
            "report_type": "daily_summary",
            "date": day.isoformat(),
            "statistics": {"total_projects": 0, "success_rate": None},
            "alerts": {},
            "warnings": [],
        }

    summary.build = build
    sent = []
    waits = []

    async def sleep(seconds):
        waits.append(seconds)
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await summary.run(sent.append, sleep=sleep)
    assert [n.report["date"] for n in sent] == ["2026-03-02", "2026-03-03"]
    assert built == [DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
    assert waits == [23 * 3600.0]


def test_a_store_made_before_the_new_columns_gets_them(tmp_path):
    """An alerts table made before ``fired_at`` and the value range existed gets them when the stores open it, all
    at once as a starting monitor's do; its old rows stay readable."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import create_engine, text

    from otel_monitor.monitor.alerting.delivery.digest import DigestStore
    from otel_monitor.monitor.alerting.delivery.outbox import Outbox
    from otel_monitor.monitor.alerting.incidents import IncidentStore
    from otel_monitor.monitor.store.migration import VERSION_TABLE

    url = f"sqlite:///{tmp_path / 'old.db'}"
    first = AlertStore(url)
    first._ready()  # every table, then the new columns taken away: the shape of an older store
    first.close()
    engine = create_engine(url)
    with engine.begin() as connection:
        for column in ("fired_at", "min_value", "max_value"):
            connection.execute(text(f"ALTER TABLE alerts DROP COLUMN {column}"))
        # the delivery ledger, the uptime days, silences, acknowledgements and escalations came later still
        for table in (
            "alert_delivery_attempts",
            "status_uptime_days",
            "silences",
            "alert_acks",
            "alert_escalations",
            "incident_events",
        ):
            connection.execute(text(f"DROP TABLE {table}"))
        connection.execute(text("ALTER TABLE alerts DROP COLUMN firing_held"))
        connection.execute(text("ALTER TABLE alerts DROP COLUMN logs_url"))
        connection.execute(text("ALTER TABLE incidents DROP COLUMN acknowledged_at"))
        # ... and versioned as that release left it: its migrations stopped at the quota table.
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0001_quota_usage'"))
    engine.dispose()
    stores = [AlertStore(url), Outbox(url), IncidentStore(url), DigestStore(url)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(lambda store: store._ready(), stores))
        alerts = stores[0]
        alerts._clock = Clock(at(1))
        alerts.upsert(make_alert(starts_at=at(1), value=3.0))
        (episode,) = alerts.episodes_between(DAY_START, DAY_END)
        assert (episode.min_value, episode.max_value) == (3.0, 3.0)
    finally:
        for store in stores:
            store.close()


@pytest.mark.asyncio
async def test_a_failed_hand_over_is_made_again_and_stray_files_are_ignored(tmp_path):
    """A summary whose hand-over failed keeps no report file, so the next start makes it again; a file that only
    looks like a report (an operator's copy) neither counts nor stops the summaries."""
    (tmp_path / f"daily-summary-{DAY.isoformat()}.json").write_text("{}")
    (tmp_path / "daily-summary-latest.json").write_text("{}")
    clock = Clock(at(24 * 2 + 9))
    summary = DailySummary(DailySummaryConfig(reports_dir=tmp_path), clock=clock)

    async def build(day):
        return {
            "message": "Daily Summary Report",
            "report_type": "daily_summary",
            "date": day.isoformat(),
            "statistics": {"total_projects": 0, "success_rate": None},
            "alerts": {},
            "warnings": [],
        }

    summary.build = build

    def refuse(notification):
        raise RuntimeError("the outbox's store is down")

    async def stop(seconds):
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await summary.run(refuse, sleep=stop)
    assert not summary.report_path(DAY + dt.timedelta(days=1)).exists()
    assert summary.missed_days() == [DAY + dt.timedelta(days=1)]
    sent = []
    with pytest.raises(asyncio.CancelledError):
        await summary.run(sent.append, sleep=stop)
    assert [n.report["date"] for n in sent] == ["2026-03-02"]
    assert summary.report_path(DAY + dt.timedelta(days=1)).exists() and summary.missed_days() == []

"""The rule evaluator: each rule at its interval, alert states by fingerprint, lifecycle, inhibition, and the changes
of each pass (the transitions to announce and what is only kept)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from otel_monitor._utc_time import utc_now
from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.evaluate.changes import Change, ChangeKind
from otel_monitor.monitor.alerting.evaluate.inhibition import inhibit
from otel_monitor.monitor.alerting.evaluate.lifecycle import advance
from otel_monitor.monitor.alerting.evaluate.sources import Sample, Source, SourceBusy, SourceError, SourceUnavailable
from otel_monitor.monitor.alerting.links import logs_link, trace_link
from otel_monitor.monitor.alerting.metrics import AlertingMetrics
from otel_monitor.monitor.alerting.model import RESOLVED, Alert, AlertState, Priority, Rule, fingerprint

__all__ = ["MONITORING_BACKEND_DOWN", "BACKEND_DOWN_RULE", "DEFAULT_INTERVALS", "default_interval", "Evaluator"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_log = StructuredLogger("otel_monitor.alerting.evaluation")

MONITORING_BACKEND_DOWN = SystemErrorCode.MONITORING_BACKEND_DOWN.value

# The monitor watching itself: raised by the evaluator while a source's backend (Prometheus) keeps failing.
BACKEND_DOWN_RULE = Rule(
    name="monitoring_backend_down",
    priority=Priority.P0,
    source="check",
    expr="monitoring.backend",
    for_seconds=10,
    clear_for_seconds=0,
    error_code=MONITORING_BACKEND_DOWN,
    summary="The monitoring backend is unreachable or failing: metric-based alerts cannot be evaluated",
    action_required="Check that Prometheus is running and reachable from otel-monitor",
    runbook="Metric rules keep their last state (nothing resolves) until the backend answers again; "
    "health and quota checks keep running.",
)

# How often a rule without ``interval_seconds`` is evaluated. P0 within seconds (the disk P0 too: a P0 must reach a
# person at once). P1 every minute: their 15-minute error rates are windows, and a P1 must reach its digest within
# the hour (see docs/ALERT_TIMING.md: detection + digest period + ``for`` <= 60 min + ``for``).
# P2 every 5 minutes (their rules mostly read 15-minute windows; the disk warning keeps its hourly interval).
DEFAULT_INTERVALS: Mapping[Priority, float] = {Priority.P0: 5.0, Priority.P1: 60.0, Priority.P2: 300.0}


def default_interval(rule: Rule) -> float:
    """The rule's ``interval_seconds``, else the default of its priority; failure-streak checks of any priority at
    the P0 cadence (the peak of a streak that ended stays readable for a minute only: failure_streaks)."""
    if rule.interval_seconds is not None:
        return rule.interval_seconds
    if rule.source == "check" and rule.expr.strip().startswith("streak."):
        return DEFAULT_INTERVALS[Priority.P0]
    return DEFAULT_INTERVALS[rule.priority]


def _kept_key(alert: Alert) -> tuple:
    """What makes a kept alert out of date; the value alone changes on every pass and is not worth a write."""
    return alert.state, alert.ends_at, alert.trace_id, alert.inhibited


class Evaluator:
    """Evaluates each rule when due; each pass returns its changes, each transition announced exactly once.

    ``sources`` maps a rule's ``source`` ("promql", "check") to the Source evaluating it; ``clock`` gives aware
    UTC datetimes. A source raising SourceError leaves the rule's alerts as they were (unknown is not clear);
    SourceUnavailable also raises the P0 ``MONITORING_BACKEND_DOWN`` for that backend until it answers again;
    SourceBusy (no query slot came free in time) leaves the rule due, to run first in the next pass.
    Firing alerts held back by inhibition are announced when the inhibitor resolves, if they still fire; an
    alert that resolves without ever being announced resolves silently. ``trace_lookup(service)`` gives the last
    failing trace of a provider for alerts with a ``service`` label (``jaeger_base`` turns it into a link, and
    ``logs_base``, VictoriaLogs' address, into a link to its log lines).

    Which alerts were announced is known here only: a firing alert is announced once, and its resolution is
    announced only if its firing was. Besides the transitions, a pass reports the changes that are only kept
    (pending alerts, firing while held back, a new worst value, pending alerts dropped, silent resolutions),
    each once: the evaluator remembers each alert as last reported.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        sources: Mapping[str, Source],
        clock: Callable[[], dt.datetime] = utc_now,
        *,
        jaeger_base: str | None = None,
        logs_base: str | None = None,
        trace_lookup: Callable[[str], str | None] | None = None,
        interval: Callable[[Rule], float] = default_interval,
        backend_down_rule: Rule = BACKEND_DOWN_RULE,
        tick_seconds: float = 1.0,
        metrics: AlertingMetrics | None = None,
    ) -> None:
        names = [rule.name for rule in rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique; repeated: {duplicates}")
        missing = sorted({rule.source for rule in rules} - set(sources))
        if missing:
            raise ValueError(f"no source for rules of source {missing}")
        if backend_down_rule.name in names:
            raise ValueError(f"rule name {backend_down_rule.name!r} is reserved")
        self._rules = list(rules)
        self._rules_by_name = {rule.name: rule for rule in [*rules, backend_down_rule]}
        self._sources = dict(sources)
        self._clock = clock
        self._jaeger_base = jaeger_base
        self._logs_base = logs_base
        self._trace_lookup = trace_lookup
        self._interval = {rule.name: interval(rule) for rule in rules}
        self._backend_down = backend_down_rule
        self._tick = tick_seconds
        self._metrics = metrics
        self._alerts: dict[str, Alert] = {}
        self._announced: set[str] = set()  # fingerprints whose firing was announced
        self._reported: dict[str, Alert] = {}  # each alert as the last change reported it
        self._value_ranges: dict[str, tuple[float, float]] = {}  # lowest and highest value reported, per alert
        self._next_due: dict[str, dt.datetime] = {}
        self._source_errors: dict[str, str] = {}

    # -- state ------------------------------------------------------------------------------------------------------
    def restore(self, alerts: Iterable[Alert]) -> None:
        """Takes back pending and firing alerts kept across a restart; firing ones count as already announced, and
        all as reported (they are kept as they are). They replace what the evaluator held (a replica that led before
        takes the store's alerts, not its own stale ones)."""
        self._alerts = {}
        self._announced = set()
        for alert in alerts:
            if alert.state is AlertState.RESOLVED or alert.rule not in self._rules_by_name:
                continue
            self._alerts[alert.fingerprint] = alert
            if alert.state is AlertState.FIRING:
                self._announced.add(alert.fingerprint)
        self._reported = dict(self._alerts)

    def alerts(self) -> list[Alert]:
        """The pending and firing alerts now (inhibited ones included)."""
        return list(self._alerts.values())

    def interval_of(self, rule_name: str) -> float:
        return self._interval[rule_name]

    def seconds_to_next_pass(self) -> float:
        """How long an evaluation loop waits before its next pass: until the next rule is due, at most one tick."""
        now = self._clock()
        wait = min([(due - now).total_seconds() for due in self._next_due.values()] or [self._tick])
        return max(0.05, min(wait, self._tick))

    # -- one pass ---------------------------------------------------------------------------------------------------
    async def evaluate_once(self, now: dt.datetime | None = None) -> list[Change]:
        """One pass over the rules due at ``now``; returns its changes: the transitions announced, in order (each
        resolution, then each new firing, most urgent and oldest first), then the changes that are only kept."""
        now = now or self._clock()
        # Started P0 first, longest due first: a source bounding its queries gives them its slots in this order.
        due = sorted(
            (rule for rule in self._rules if self._next_due.get(rule.name, now) <= now),
            key=lambda rule: (rule.priority.value, self._next_due.get(rule.name, now)),
        )
        results = await asyncio.gather(*(self._evaluate_rule(rule) for rule in due), return_exceptions=True)
        resolved: list[Alert] = []
        backends: dict[str, bool] = {}  # backend queried this pass -> failed
        deferred = [rule.name for rule, result in zip(due, results, strict=False) if isinstance(result, SourceBusy)]
        if deferred:
            _log.warning(
                "Alert rules deferred: no query slot came free in time; they stay due",
                rules=len(deferred),
                first=deferred[0],
            )
        for rule, result in zip(due, results, strict=False):
            if isinstance(result, SourceBusy):
                continue  # not evaluated: still due, so it runs in the next pass ahead of later ones
            self._next_due[rule.name] = now + dt.timedelta(seconds=self._interval[rule.name])
            source_name = getattr(self._sources[rule.source], "name", rule.source)
            if isinstance(result, SourceUnavailable):
                backends[result.backend] = True
                self._count_error(rule)
                self._note_error(rule, result)
                continue
            if isinstance(result, BaseException):
                self._count_error(rule)
                if not isinstance(result, SourceError):
                    _log.error("Alert rule evaluation raised", rule=rule.name, error=repr(result))
                else:
                    self._note_error(rule, result)
                continue
            backends.setdefault(source_name, False)
            if self._source_errors.pop(rule.name, None) is not None:
                _log.info("Alert rule evaluates again", rule=rule.name)
            resolved += await self._apply(rule, result, now)
        for backend, failed in backends.items():
            samples = [Sample({"backend": backend})] if failed else []
            resolved += await self._apply(self._backend_down, samples, now, only={"backend": backend})
        announced = self._announce(resolved)
        return announced + self._kept_changes(announced)

    async def _evaluate_rule(self, rule: Rule) -> list[Sample]:
        """The rule's samples from its source, the time it took reported (unless no query slot came free)."""
        started = time.perf_counter()
        busy = False
        try:
            return await self._sources[rule.source].evaluate(rule)
        except SourceBusy:
            busy = True
            raise
        finally:
            if self._metrics is not None and not busy:
                self._metrics.rule_evaluated(rule.name, time.perf_counter() - started)

    def _count_error(self, rule: Rule) -> None:
        if self._metrics is not None:
            self._metrics.rule_failed(rule.name)

    # -- steps of a pass --------------------------------------------------------------------------------------------
    async def _apply(
        self, rule: Rule, samples: list[Sample], now: dt.datetime, only: Mapping[str, str] | None = None
    ) -> list[Alert]:
        """Advances the rule's alerts with this evaluation; returns those that resolved."""
        resolved: list[Alert] = []
        seen: set[str] = set()
        for sample in samples:
            labels = {**rule.labels, **sample.labels}
            previous = self._alerts.get(fingerprint(rule.name, labels))
            trace_id = sample.trace_id or await self._lookup_trace(labels, previous)
            jaeger_url = trace_link(self._jaeger_base, trace_id) if trace_id and self._jaeger_base else None
            logs_url = logs_link(self._logs_base, trace_id) if trace_id and self._logs_base else None
            alert, _ = advance(previous, True, rule, now, sample.value, labels, trace_id, jaeger_url, logs_url)
            assert alert is not None  # a condition that holds always leaves an alert
            seen.add(alert.fingerprint)
            self._alerts[alert.fingerprint] = alert
        for fp, previous in list(self._alerts.items()):
            if previous.rule != rule.name or fp in seen:
                continue
            if only is not None and any(previous.labels.get(k) != v for k, v in only.items()):
                continue
            alert, transition = advance(previous, False, rule, now)
            if alert is None or transition == RESOLVED:
                del self._alerts[fp]
            else:
                self._alerts[fp] = alert
            if transition == RESOLVED:
                assert alert is not None  # a resolution is announced with the resolved alert
                resolved.append(alert)
        return resolved

    async def _lookup_trace(self, labels: Mapping[str, str], previous: Alert | None) -> str | None:
        service = labels.get("service")
        if self._trace_lookup is None or service is None:
            return None
        try:
            return await asyncio.to_thread(self._trace_lookup, service)
        except Exception as exc:  # a trace link is a nicety; never a reason to miss an alert
            _log.warning("Trace lookup failed", service=service, error=repr(exc))
            return None

    def _announce(self, resolved: list[Alert]) -> list[Change]:
        """Inhibition, then one RESOLVED per announced alert that resolved, one FIRED per new kept alert."""
        firing = [a for a in self._alerts.values() if a.state is AlertState.FIRING]
        kept, _ = inhibit(firing, self._rules_by_name)
        for alert in kept:
            self._alerts[alert.fingerprint] = alert
        changes: list[Change] = []
        for alert in resolved:
            if alert.fingerprint in self._announced:
                self._announced.discard(alert.fingerprint)
                changes.append(Change(alert, ChangeKind.RESOLVED))
        for alert in sorted(kept, key=lambda a: (a.priority.value, a.starts_at or _EPOCH)):
            if alert.fingerprint not in self._announced:
                self._announced.add(alert.fingerprint)
                changes.append(Change(alert, ChangeKind.FIRED))
        return changes

    def _kept_changes(self, announced: list[Change]) -> list[Change]:
        """The changes of the pass that announce nothing: every alert new or out of date since it was last reported
        (or seen at a value outside its range so far: the daily summary reports its worst), every pending alert
        gone (dropped), every other alert gone without an announced resolution (it resolved while held back)."""
        for change in announced:
            fp = change.alert.fingerprint
            if change.kind is ChangeKind.RESOLVED:
                self._reported.pop(fp, None)
                self._value_ranges.pop(fp, None)
            else:
                self._widens_range(change.alert)
                self._reported[fp] = change.alert
        changes: list[Change] = []
        for fp, alert in self._alerts.items():
            reported = self._reported.get(fp)
            widens = self._widens_range(alert)
            if reported is None or _kept_key(reported) != _kept_key(alert) or widens:
                changes.append(Change(alert, ChangeKind.UPDATED))
                self._reported[fp] = alert
        for fp in [fp for fp in self._reported if fp not in self._alerts]:
            gone = self._reported.pop(fp)
            self._value_ranges.pop(fp, None)
            if gone.state is AlertState.PENDING:
                changes.append(Change(gone, ChangeKind.DROPPED))
            else:
                ended = gone.with_state(AlertState.RESOLVED, ends_at=gone.ends_at or self._clock())
                changes.append(Change(ended, ChangeKind.ENDED))
        return changes

    def _widens_range(self, alert: Alert) -> bool:
        """Notes the alert's value; True when it is outside the range reported so far."""
        if alert.value is None:
            return False
        low, high = self._value_ranges.get(alert.fingerprint, (alert.value, alert.value))
        widened = alert.fingerprint not in self._value_ranges or not low <= alert.value <= high
        self._value_ranges[alert.fingerprint] = (min(low, alert.value), max(high, alert.value))
        return widened

    def _note_error(self, rule: Rule, error: SourceError) -> None:
        """Logs a rule's evaluation error when it starts or changes, not on every pass."""
        message = str(error)
        if self._source_errors.get(rule.name) != message:
            self._source_errors[rule.name] = message
            _log.warning("Alert rule cannot be evaluated; its alerts keep their state", rule=rule.name, error=message)

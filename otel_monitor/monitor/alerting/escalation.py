"""Repeat and escalation: a firing alert nobody acknowledged is notified again every ``repeat_interval_seconds`` on
its routed channels, and reaches each escalation step's channels ``after_seconds`` from its firing; both stop once
it is acknowledged or resolved, and what was sent is kept so a restart does not page again."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.acknowledgement import Acknowledgement, episode_start
from otel_monitor.monitor.alerting.incidents import IncidentEventKind
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers import CHANNEL_NAME
from otel_monitor.monitor.alerting.state import SqlStore
from otel_monitor.monitor.store.schema import AlertEscalationRow as _AlertEscalationRow

__all__ = [
    "EscalationStep",
    "EscalationPolicy",
    "DEFAULT_ESCALATION",
    "DEFAULT_P0_REPEAT_INTERVAL_SECONDS",
    "ESCALATION_CHECK_SECONDS",
    "EscalationState",
    "EscalationStore",
    "Escalator",
    "never_held",
]

_log = StructuredLogger("otel_monitor.alerting.escalation")

# A P0 pages a person: unacknowledged, it pages again every half hour (a page lost in a busy night is found again
# within the half hour, and an on-call person is not woken every few minutes for the same alert).
DEFAULT_P0_REPEAT_INTERVAL_SECONDS = 1800.0
# How often the escalation task looks at the firing alerts: the repeats and steps are at most this late.
ESCALATION_CHECK_SECONDS = 15.0


class EscalationStep(BaseModel):
    """``after_seconds`` from its firing, an unacknowledged alert's firing notification goes to ``channels`` too."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    after_seconds: float = Field(gt=0)
    channels: tuple[Annotated[str, Field(pattern=CHANNEL_NAME)], ...] = Field(min_length=1)


class EscalationPolicy(BaseModel):
    """One priority's repeat (None: never) and escalation steps (in the order of their ``after_seconds``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repeat_interval_seconds: float | None = Field(None, gt=0)
    steps: tuple[EscalationStep, ...] = ()

    @model_validator(mode="after")
    def _steps_in_order(self) -> EscalationPolicy:
        times = [step.after_seconds for step in self.steps]
        if times != sorted(times):
            raise ValueError("steps must be in the order of their after_seconds")
        return self


# P0 repeats every half hour; no escalation steps, whose channels only the operator knows; P1 and P2 never repeat
# (the digest and the daily summary list them).
DEFAULT_ESCALATION: dict[Priority, EscalationPolicy] = {
    Priority.P0: EscalationPolicy(repeat_interval_seconds=DEFAULT_P0_REPEAT_INTERVAL_SECONDS)
}


def never_held(_alert: Alert) -> bool:
    """The default hold: no alert is held back from repeating and escalating."""
    return False


@dataclass(frozen=True)
class EscalationState:
    """What repeat and escalation sent for one alert episode."""

    fingerprint: str
    starts_at: dt.datetime
    repeats: int
    last_notified_at: dt.datetime
    steps_since: dt.datetime
    steps_reached: int
    channels_reached: tuple[str, ...]


def _state_of(row: _AlertEscalationRow) -> EscalationState:
    return EscalationState(
        row.fingerprint,
        row.starts_at,
        row.repeats,
        row.last_notified_at,
        row.steps_since,
        row.steps_reached,
        tuple(json.loads(row.channels_reached)),
    )


class EscalationStore(SqlStore):
    """The ``alert_escalations`` table, in the outbox's database (same URL)."""

    def get(self, alert: Alert) -> EscalationState | None:
        starts_at = episode_start(alert)
        with self._lock, Session(self._ready()) as session:
            row = session.scalar(self._of(alert.fingerprint, starts_at))
            return None if row is None else _state_of(row)

    def put(self, state: EscalationState) -> None:
        with self._lock, Session(self._ready()) as session, session.begin():
            row = session.scalar(self._of(state.fingerprint, state.starts_at))
            if row is None:
                row = _AlertEscalationRow(fingerprint=state.fingerprint, starts_at=state.starts_at)
                session.add(row)
            row.repeats, row.last_notified_at = state.repeats, state.last_notified_at
            row.steps_since, row.steps_reached = state.steps_since, state.steps_reached
            row.channels_reached = json.dumps(list(state.channels_reached))

    def channels_reached(self, alert: Alert) -> tuple[str, ...]:
        """The channels escalation reached for the alert's episode (they hear of its resolution too)."""
        state = self.get(alert)
        return () if state is None else state.channels_reached

    @staticmethod
    def _of(fingerprint: str, starts_at: dt.datetime) -> Select[_AlertEscalationRow]:
        return select(_AlertEscalationRow).where(
            _AlertEscalationRow.fingerprint == fingerprint, _AlertEscalationRow.starts_at == starts_at
        )


Enqueue = Callable[[Notification, Sequence[str]], Awaitable[None]]
StandingAcks = Callable[[Sequence[Alert]], Awaitable[Mapping[str, Acknowledgement]]]
# (alert, kind, text): an entry on the timeline of the alert's incident, if it has one.
Event = Callable[[Alert, IncidentEventKind, str], Awaitable[None]]


class Escalator:
    """Repeats and escalates the firing alerts of the priorities in ``policies``, on the clock's time.

    ``check_once`` looks at each firing alert not held (``is_held``, e.g. silenced): acknowledged, it is left
    alone, unless its acknowledgement went stale (``until`` passed), which ends it and re-notifies at once (a
    repeat), its steps counting again from then. Otherwise a repeat is due ``repeat_interval_seconds`` after it was
    last notified, and each step ``after_seconds`` after it fired (``fired_at``; by default its start).
    Notifications are queued before the state is written: a crash between them queues the same ids again on
    restart, which the outbox does not queue twice.
    """

    def __init__(
        self,
        policies: Mapping[Priority, EscalationPolicy],
        routing: Callable[[Priority], Sequence[str]],
        *,
        store: EscalationStore,
        alerts: Callable[[], Sequence[Alert]],
        standing_acks: StandingAcks,
        end_ack: Callable[[Alert, Acknowledgement, dt.datetime], Awaitable[None]],
        enqueue: Enqueue,
        notification: Callable[[Alert, int], Notification],
        record: Event,
        is_held: Callable[[Alert], bool] = never_held,
        fired_at: Callable[[Alert], dt.datetime] = episode_start,
        check_seconds: float = ESCALATION_CHECK_SECONDS,
    ) -> None:
        self.policies = policies
        self._routing = routing
        self.store = store
        self._alerts = alerts
        self._standing_acks = standing_acks
        self._end_ack = end_ack
        self._enqueue = enqueue
        self._notification = notification
        self._record = record
        self.is_held = is_held
        self._fired_at = fired_at
        self._check_seconds = check_seconds

    async def check_once(self) -> None:
        """One look at every firing alert with a policy; one failing is logged and the others go on."""
        now = self.store.clock()
        firing = [
            alert
            for alert in self._alerts()
            if alert.state is AlertState.FIRING and alert.priority in self.policies and alert.starts_at is not None
        ]
        if not firing:
            return
        acks = await self._standing_acks(firing)
        for alert in firing:
            try:
                if not self.is_held(alert):
                    await self._check(alert, acks.get(alert.fingerprint), now)
            except Exception as exc:
                _log.error(
                    "Alert escalation check failed", rule=alert.rule, fingerprint=alert.fingerprint, error=repr(exc)
                )

    async def _check(self, alert: Alert, ack: Acknowledgement | None, now: dt.datetime) -> None:
        policy = self.policies[alert.priority]
        state = await self.store.executor.run(self.store.get, alert)
        if state is None:
            fired = self._fired_at(alert)
            state = EscalationState(alert.fingerprint, episode_start(alert), 0, fired, fired, 0, ())
        repeat_now = False
        if ack is not None:
            if not ack.stale(now):
                return
            await self._end_ack(alert, ack, now)
            state = replace(state, steps_since=now)
            repeat_now = True
        interval = policy.repeat_interval_seconds
        due = interval is not None and (now - state.last_notified_at).total_seconds() >= interval
        changed = False
        if repeat_now or due:
            state = await self._repeat(alert, state, now)
            changed = True
        for index in range(state.steps_reached, len(policy.steps)):
            step = policy.steps[index]
            if (now - state.steps_since).total_seconds() < step.after_seconds:
                break
            state = await self._escalate(alert, state, index, step)
            changed = True
        if changed:
            await self.store.executor.run(self.store.put, state)

    async def _repeat(self, alert: Alert, state: EscalationState, now: dt.datetime) -> EscalationState:
        repeat = state.repeats + 1
        channels = tuple(self._routing(alert.priority))
        if channels:
            await self._enqueue(self._notification(alert, repeat), channels)
        _log.warning("Alert repeated", rule=alert.rule, fingerprint=alert.fingerprint, repeat=repeat)
        await self._record(
            alert, IncidentEventKind.REPEATED, f"repeat {repeat} sent to {', '.join(channels) or 'no channel'}"
        )
        return replace(state, repeats=repeat, last_notified_at=now)

    async def _escalate(
        self, alert: Alert, state: EscalationState, index: int, step: EscalationStep
    ) -> EscalationState:
        await self._enqueue(self._notification(alert, 0), step.channels)
        _log.warning(
            "Alert escalated", rule=alert.rule, fingerprint=alert.fingerprint, step=index + 1, channels=step.channels
        )
        await self._record(alert, IncidentEventKind.ESCALATED, f"step {index + 1}: sent to {', '.join(step.channels)}")
        reached = tuple(dict.fromkeys((*state.channels_reached, *step.channels)))
        return replace(state, steps_reached=index + 1, channels_reached=reached)

    async def run(self, stop: asyncio.Event) -> None:
        """``check_once`` every ``check_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.check_once()
            except Exception as exc:  # the stores are down: the next check tries again
                _log.error("Alert escalation pass failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._check_seconds)


def policies_with_steps(policies: Mapping[Priority, EscalationPolicy]) -> Iterable[tuple[str, EscalationStep]]:
    """Each step with where it is in the config (``P0.steps[1]``), for validating its channel names."""
    for priority, policy in policies.items():
        for index, step in enumerate(policy.steps):
            yield f"{priority.value}.steps[{index}]", step

"""What a notifier is handed and how it answers: one alert transition (or a digest, a daily summary), and whether
its delivery worked."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority, Transition

__all__ = ["Notification", "Notifier", "notification_id", "repeat_id"]


def _iso(moment: dt.datetime | None) -> str | None:
    """A time as notification ids hash it and the stored JSON keeps it (``...T10:30:15.123456+00:00``): changing
    the form would change every id."""
    return iso_utc(moment, microseconds=True, utc_suffix="+00:00")


def notification_id(alert: Alert, transition: Transition) -> str:
    """A stable id of one transition of one alert: the same alert firing twice from the same start is one id."""
    key = "|".join(
        (
            alert.fingerprint,
            transition,
            _iso(alert.starts_at) or "",
            (_iso(alert.ends_at) or "") if transition == "resolved" else "",
        )
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def repeat_id(alert: Alert, repeat: int) -> str:
    """The id of the ``repeat``-th repeat of the alert episode's firing: a new id per repeat, so the outbox (which
    never queues one id twice per channel) sends each one, and the same id for the same repeat (a retry, a restart)."""
    key = f"{notification_id(alert, 'firing')}|repeat|{repeat}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Notification:
    """One alert transition to deliver; ``id`` is what receivers dedupe on (webhook ``Idempotency-Key``).

    A P1 digest is one notification whose ``alert`` stands for the digest and whose ``digest`` lists the hour's
    transitions; a P2 daily summary carries the day's statistics (the ``daily_summary`` report) in ``report``.
    Receivers that know neither still show the standing alert's summary and action.

    ``ack_url`` is where an operator acknowledges the alert (firing P0s); ``repeat`` counts the re-notifications of
    a firing alert nobody acknowledged (0: the first notification).
    """

    id: str
    transition: Transition
    alert: Alert
    digest: tuple[Notification, ...] = ()
    report: dict | None = None
    ack_url: str | None = None
    repeat: int = 0

    @classmethod
    def of(cls, alert: Alert, transition: Transition | None = None) -> Notification:
        if transition is None:
            transition = "resolved" if alert.state is AlertState.RESOLVED else "firing"
        return cls(notification_id(alert, transition), transition, alert)

    @property
    def resolved(self) -> bool:
        return self.transition == "resolved"

    @property
    def title(self) -> str:
        """``P0 Alert: API Key Invalid`` as alert log lines start, ``P0 Alert (repeat 2): ...`` when repeated,
        ``P0 Resolved: ...`` once clear."""
        verb = "Resolved" if self.resolved else "Alert"
        if self.repeat:
            verb = f"{verb} (repeat {self.repeat})"
        return f"{self.alert.priority.value} {verb}: {self.alert.summary}"

    def details(self) -> dict[str, object]:
        """The fields every channel carries, without the empty ones."""
        alert = self.alert
        fields: dict[str, object] = {
            "service": alert.service,
            "action_required": alert.action_required,
            "runbook": alert.runbook,
            "trace_id": alert.trace_id,
            "jaeger_url": alert.jaeger_url,
            "logs_url": alert.logs_url,
            "value": alert.value,
            "inhibited": list(alert.inhibited) or None,
            "repeat": self.repeat or None,
            "ack_url": self.ack_url,
        }
        return {key: value for key, value in fields.items() if value is not None}

    # -- persistence (the outbox keeps notifications as JSON) ------------------------------------------------------
    def to_json(self) -> str:
        alert = asdict(self.alert)
        alert["priority"] = self.alert.priority.value
        alert["state"] = self.alert.state.value
        alert["starts_at"] = _iso(self.alert.starts_at)
        alert["ends_at"] = _iso(self.alert.ends_at)
        alert["inhibited"] = list(self.alert.inhibited)
        data: dict[str, object] = {"id": self.id, "transition": self.transition, "alert": alert}
        if self.digest:
            data["digest"] = [json.loads(entry.to_json()) for entry in self.digest]
        if self.report is not None:
            data["report"] = self.report
        if self.ack_url is not None:
            data["ack_url"] = self.ack_url
        if self.repeat:
            data["repeat"] = self.repeat
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Notification:
        return cls._from_data(json.loads(text))

    @classmethod
    def _from_data(cls, data: dict) -> Notification:
        alert = dict(data["alert"])
        alert["priority"] = Priority(alert["priority"])
        alert["state"] = AlertState(alert["state"])
        for key in ("starts_at", "ends_at"):
            alert[key] = dt.datetime.fromisoformat(alert[key]) if alert.get(key) else None
        alert["inhibited"] = tuple(alert.get("inhibited") or ())
        digest = tuple(cls._from_data(entry) for entry in data.get("digest") or ())
        return cls(
            data["id"],
            data["transition"],
            Alert(**alert),
            digest,
            data.get("report"),
            ack_url=data.get("ack_url"),
            repeat=data.get("repeat", 0),
        )


@runtime_checkable
class Notifier(Protocol):
    """A receiver: delivers one notification and says whether a failure is worth retrying. Never raises."""

    name: str

    async def notify(self, notification: Notification) -> DeliveryResult: ...

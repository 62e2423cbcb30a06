"""The delivery ledger: every finished attempt at an outbox row, written by ``Outbox.record`` with its outcome."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from otel_monitor._utc_time import iso_utc
from otel_monitor.monitor.store.schema import DeliveryAttemptRow

__all__ = ["AttemptResult", "DeliveryAttempt", "attempts_of"]


class AttemptResult:
    """What one attempt came to: delivered, to be retried, or the end of the delivery (refused or given up)."""

    OK = "ok"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One row of the ledger, detached from the database; ``error`` is scrubbed text."""

    attempt: int
    attempted_at: dt.datetime
    result: str
    status_code: int | None
    error: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "attempt": self.attempt,
            "at": iso_utc(self.attempted_at, microseconds=True),
            "result": self.result,
            "status_code": self.status_code,
            "error": self.error,
        }


def attempts_of(session: Session, outbox_ids: Collection[int]) -> dict[int, list[DeliveryAttempt]]:
    """The attempts of each of the outbox rows ``outbox_ids``, in order (a row never attempted maps to [])."""
    attempts: dict[int, list[DeliveryAttempt]] = {outbox_id: [] for outbox_id in outbox_ids}
    if not attempts:
        return attempts
    query = (
        select(DeliveryAttemptRow)
        .where(DeliveryAttemptRow.outbox_id.in_(list(attempts)))
        .order_by(DeliveryAttemptRow.outbox_id, DeliveryAttemptRow.attempt)
    )
    for row in session.scalars(query):
        attempts[row.outbox_id].append(
            DeliveryAttempt(row.attempt, row.attempted_at, row.result, row.status_code, row.error)
        )
    return attempts

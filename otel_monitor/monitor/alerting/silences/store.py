"""The ``silences`` table, in the alerting store: silences added, read back and expired."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from otel_monitor.monitor.alerting.delivery.outbox import SqlStore
from otel_monitor.monitor.alerting.silences.matchers import Matcher
from otel_monitor.monitor.alerting.silences.model import Silence, SilenceState
from otel_monitor.monitor.store.schema import SilenceRow as _SilenceRow

__all__ = ["SilenceStore", "DEFAULT_SILENCE_LIMIT"]

DEFAULT_SILENCE_LIMIT = 100


def _silence_of(row: _SilenceRow) -> Silence:
    return Silence(
        id=row.id,
        matchers=tuple(Matcher.model_validate(matcher) for matcher in json.loads(row.matchers)),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        comment=row.comment,
        author=row.author,
        created_at=row.created_at,
    )


class SilenceStore(SqlStore):
    """The silences, in the outbox's database (same URL)."""

    def add(
        self,
        matchers: tuple[Matcher, ...],
        *,
        starts_at: dt.datetime,
        ends_at: dt.datetime,
        comment: str,
        author: str,
    ) -> Silence:
        row = _SilenceRow(
            id=str(uuid.uuid4()),
            matchers=json.dumps([matcher.model_dump() for matcher in matchers]),
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
            author=author,
            created_at=self._clock(),
        )
        with self._lock, Session(self._ready()) as session, session.begin():
            session.add(row)
            silence = _silence_of(row)
        return silence

    def get(self, silence_id: str) -> Silence | None:
        with self._lock, Session(self._ready()) as session:
            row = session.get(_SilenceRow, silence_id)
            return None if row is None else _silence_of(row)

    def expire(self, silence_id: str) -> Silence | None:
        """Ends the silence now (one not started yet ends before it starts); None when there is no such silence."""
        now = self._clock()
        with self._lock, Session(self._ready()) as session, session.begin():
            row = session.get(_SilenceRow, silence_id)
            if row is None:
                return None
            if row.ends_at > now:
                row.ends_at = now
                row.starts_at = min(row.starts_at, now)
            return _silence_of(row)

    def silences(self, *, state: SilenceState | None = None, limit: int = DEFAULT_SILENCE_LIMIT) -> list[Silence]:
        """The silences in ``state`` (all when None), newest first."""
        now = self._clock()
        query = select(_SilenceRow).order_by(_SilenceRow.created_at.desc(), _SilenceRow.id)
        if state is SilenceState.PENDING:
            query = query.where(_SilenceRow.starts_at > now)
        elif state is SilenceState.ACTIVE:
            query = query.where(_SilenceRow.starts_at <= now, _SilenceRow.ends_at > now)
        elif state is SilenceState.EXPIRED:
            query = query.where(_SilenceRow.ends_at <= now)
        with self._lock, Session(self._ready()) as session:
            return [_silence_of(row) for row in session.scalars(query.limit(limit)).all()]

    def unexpired(self) -> list[Silence]:
        """The silences active now or still to start: what the gate keeps in memory."""
        query = select(_SilenceRow).where(_SilenceRow.ends_at > self._clock())
        with self._lock, Session(self._ready()) as session:
            return [_silence_of(row) for row in session.scalars(query).all()]

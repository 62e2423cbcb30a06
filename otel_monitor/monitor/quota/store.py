"""The quota usage history in a SQL database (SQLite or PostgreSQL by URL), its schema kept by the stores' Alembic
migrations."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from otel_monitor.monitor.store.blocking_calls import BlockingExecutor
from otel_monitor.monitor.store.engine import STORE_THREAD_WAIT_SECONDS, is_in_memory_sqlite, store_engine
from otel_monitor.monitor.store.migration import upgrade_to_head
from otel_monitor.monitor.store.schema import QuotaUsage

__all__ = ["QuotaUsage", "UsageSample", "QuotaStore", "QuotaStoreError", "IN_MEMORY_URL"]

IN_MEMORY_URL = "sqlite://"
_UTC = dt.UTC
# Calls are serialised by the store's lock: a second thread only lets the next call wait there, not in the queue.
_THREADS = 2


@dataclass(frozen=True)
class UsageSample:
    """A stored quota check, detached from the database."""

    service: str
    used: float
    total: float
    percentage: float
    timestamp: dt.datetime

    @classmethod
    def of(cls, row: QuotaUsage) -> UsageSample:
        return cls(row.service, row.used, row.total, row.percentage, row.timestamp)


class QuotaStoreError(Exception):
    """The store cannot be used (unreachable, corrupt, not migratable); ``store`` is its URL without password."""

    def __init__(self, store: str, reason: str) -> None:
        self.store = store
        self.reason = reason
        super().__init__(f"quota store {store} unavailable: {reason}")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


class QuotaStore:
    """Reads and writes QuotaUsage rows; the schema is brought to the latest migration on first use.

    Calls are blocking and serialised by a lock; from async code run them on ``executor`` (the store's own threads,
    never the event loop's default executor: a hanging database must not starve the health checks). Every failure
    is raised as QuotaStoreError naming the store, a call that found no free thread within
    ``STORE_THREAD_WAIT_SECONDS`` too, and the next call tries again (a store that comes back is used again).
    """

    def __init__(self, url: str = IN_MEMORY_URL) -> None:
        self._url = make_url(url)
        self.name = self._url.render_as_string(hide_password=True)
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._migrated = False
        self._in_memory = is_in_memory_sqlite(self._url)
        self.executor = BlockingExecutor(
            "otel-monitor-quota-store",
            max_workers=_THREADS,
            start_timeout=STORE_THREAD_WAIT_SECONDS,
            busy_error=self._busy,
        )

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def _busy(self, reason: str) -> QuotaStoreError:
        return QuotaStoreError(self.name, reason)

    def _fail(self, exc: BaseException) -> QuotaStoreError:
        """The error to raise; drops the pooled connections, so the next call connects (and migrates) afresh."""
        if self._engine is not None and not self._in_memory:
            self._engine.dispose()
            self._engine = None
            self._migrated = False
        orig = getattr(exc, "orig", None)
        cause = orig if orig is not None else exc
        reason = f"{type(cause).__name__}: {_first_line(str(cause))}"
        if self._url.password:
            reason = reason.replace(str(self._url.password), "***")
        return QuotaStoreError(self.name, reason)

    def _ready(self) -> Engine:
        if self._engine is None:
            self._engine = store_engine(self._url)
        if not self._migrated:
            upgrade_to_head(self._engine)
            self._migrated = True
        return self._engine

    def migrate(self) -> None:
        """Applies the migrations up to head (``alembic upgrade head`` on this store)."""
        with self._lock:
            try:
                self._ready()
            except Exception as exc:
                raise self._fail(exc) from None

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._migrated = False

    # -- rows -----------------------------------------------------------------------------------------------------
    def add(self, service: str, used: float, total: float, percentage: float, timestamp: dt.datetime) -> UsageSample:
        """Persists one check."""
        row = QuotaUsage(
            service=service, used=float(used), total=float(total), percentage=float(percentage), timestamp=timestamp
        )
        with self._lock:
            try:
                with Session(self._ready(), expire_on_commit=False) as session, session.begin():
                    session.add(row)
                return UsageSample.of(row)
            except Exception as exc:
                raise self._fail(exc) from None

    def history(
        self, service: str, since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int = 10_000
    ) -> list[UsageSample]:
        """The checks of ``service`` from ``since`` through ``until``, oldest first (the newest ``limit``)."""
        query = select(QuotaUsage).where(QuotaUsage.service == service)
        if since is not None:
            query = query.where(QuotaUsage.timestamp >= since)
        if until is not None:
            query = query.where(QuotaUsage.timestamp <= until)
        query = query.order_by(QuotaUsage.timestamp.desc(), QuotaUsage.id.desc()).limit(limit)
        rows = self._select(query)
        return [UsageSample.of(row) for row in reversed(rows)]

    def latest(self, service: str) -> UsageSample | None:
        rows = self._select(
            select(QuotaUsage)
            .where(QuotaUsage.service == service)
            .order_by(QuotaUsage.timestamp.desc(), QuotaUsage.id.desc())
            .limit(1)
        )
        return UsageSample.of(rows[0]) if rows else None

    def count(self, service: str | None = None) -> int:
        query = select(func.count(QuotaUsage.id))
        if service is not None:
            query = query.where(QuotaUsage.service == service)
        with self._lock:
            try:
                with Session(self._ready()) as session:
                    return int(session.scalar(query) or 0)
            except Exception as exc:
                raise self._fail(exc) from None

    def _select(self, query: Select[QuotaUsage]) -> list[QuotaUsage]:
        with self._lock:
            try:
                with Session(self._ready(), expire_on_commit=False) as session:
                    return list(session.scalars(query))
            except Exception as exc:
                raise self._fail(exc) from None

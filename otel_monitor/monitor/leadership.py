"""Which monitor replica leads: a PostgreSQL advisory lock held on a dedicated connection (HA), or always this one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.store.engine import postgres_connect_args

__all__ = [
    "LEADER_LOCK",
    "AdvisoryLockLeadership",
    "AlwaysLeader",
    "HaConfig",
    "Leadership",
    "default_replica_id",
    "replicas_need_postgres",
]

_log = StructuredLogger("otel_monitor.leadership")

# The advisory lock the leading replica holds: (namespace "otmn" as an int4, "alerting leader"). Any replicas on one
# database with this key compete for one leadership.
LEADER_LOCK = (0x6F746D6E, 1)
# How long one leadership query may take before the connection counts as lost (and the leadership with it).
LEADERSHIP_QUERY_TIMEOUT_SECONDS = 3.0
# The lock session's settings. The server drops a client gone silent (host crashed, network cut) after about
# 5 + 3 * 2 = 11 s of unanswered keepalives, freeing the lock for another replica; by then the silent leader has
# already stepped down: its own check fails within one check interval plus the query timeout (at most 8 s).
_LOCK_SESSION_SETTINGS = {
    "statement_timeout": int(LEADERSHIP_QUERY_TIMEOUT_SECONDS * 1000),
    "tcp_keepalives_idle": 5,
    "tcp_keepalives_interval": 2,
    "tcp_keepalives_count": 3,
}
# A replica whose lock was taken from it (its connection killed or lost) skips this many checks before trying again,
# so that a replica with a sound connection takes over (it alone leads again if no other replica is left).
LOST_LEADER_SITS_OUT_CHECKS = 2


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class HaConfig(BaseModel):
    """Monitor replicas: with ``enabled``, any number of ``serve`` on one PostgreSQL (``alerting.store_url``) elect
    one leader, which alone evaluates the rules and runs the digest, the daily summary, escalation and heartbeat."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    # Shown by the health endpoint; default hostname:pid.
    replica_id: str | None = Field(default=None, min_length=1)
    # How often a follower tries to take the lock and the leader checks it still holds it: failover takes about
    # this long once the old leader's session is gone.
    check_interval_seconds: float = Field(default=1.0, gt=0, le=5)


def replicas_need_postgres(ha: HaConfig, store_url: str | None) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with replicas on this store: they share a PostgreSQL, SQLite serves one replica only."""
    if not ha.enabled or store_url is None or make_url(store_url).get_backend_name() == "postgresql":
        return []
    return [
        (
            ("ha", "enabled"),
            "monitor replicas need a PostgreSQL alerting.store_url (SQLite serves one replica): "
            "set alerting.store_url to postgresql+psycopg://... or ha.enabled to false",
        )
    ]


OnChange = Callable[[], Awaitable[None]]


class Leadership(Protocol):
    """Whether this replica leads, and the loop that follows the leadership."""

    replica_id: str
    enabled: bool

    @property
    def is_leader(self) -> bool: ...

    async def still_leading(self) -> bool:
        """Checks with the database (the fence before an evaluation or a send)."""
        ...

    async def run(self, on_gain: OnChange, on_loss: OnChange, stop: asyncio.Event) -> None: ...

    async def close(self) -> None: ...


class AlwaysLeader:
    """One replica (SQLite, or HA off): it always leads."""

    enabled = False

    def __init__(self, replica_id: str | None = None) -> None:
        self.replica_id = replica_id or default_replica_id()

    @property
    def is_leader(self) -> bool:
        return True

    async def still_leading(self) -> bool:
        return True

    async def run(self, on_gain: OnChange, on_loss: OnChange, stop: asyncio.Event) -> None:
        await stop.wait()

    async def close(self) -> None:
        return None


class AdvisoryLockLeadership:
    """Leads while ``pg_try_advisory_lock(LEADER_LOCK)`` is held on its own connection (never a pooled one).

    The lock is the session's: a killed process, a terminated backend or a dropped connection frees it on the server,
    with no lease to expire. Every ``check_interval_seconds`` a follower tries to take it, and the leader checks
    ``pg_locks`` on that connection that it still holds it; a failing or slow query counts as lost, the connection is
    dropped (freeing the lock if the server still has it) and a new one is opened for the next try.

    Chosen over a lease row with fencing tokens: the server ends the leadership with the session, so a dead leader is
    replaced as soon as a follower next tries (no lease to wait out, no clocks compared across hosts), and nothing
    is written per renewal. The fencing a token would give is had otherwise: the leader checks the lock before each
    evaluation pass and escalation send, and every notification is queued once per idempotency key (the outbox's
    unique notification id), so a pass that overlaps the next leader's sends nothing twice."""

    enabled = True

    def __init__(self, url: str, *, replica_id: str | None = None, check_interval_seconds: float = 1.0) -> None:
        parsed = make_url(url)
        self.replica_id = replica_id or default_replica_id()
        self.check_interval_seconds = check_interval_seconds
        self._engine: Engine = create_engine(
            parsed,
            poolclass=NullPool,
            connect_args={
                **postgres_connect_args(parsed.get_backend_name()),
                "application_name": f"otel-monitor leader election {self.replica_id}"[:63],
            },
        )
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # one query on the connection at a time
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    def backend_pid(self) -> int | None:
        """The server process of the lock connection (what ``pg_terminate_backend`` ends), None without one."""
        with self._lock:
            if self._connection is None:
                return None
            return int(self._connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def _query(self, sql: str) -> bool:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._engine.connect()
                    for setting, value in _LOCK_SESSION_SETTINGS.items():
                        self._connection.exec_driver_sql(f"SET {setting} = {value}")
                    self._connection.commit()
                held = bool(self._connection.execute(text(sql), {"a": LEADER_LOCK[0], "b": LEADER_LOCK[1]}).scalar())
                self._connection.commit()
                return held
            except Exception:
                self._drop()
                raise

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.invalidate()
                self._connection.close()
            self._connection = None

    async def _ask(self, sql: str) -> bool:
        """The query's answer; False when it fails or outlasts the timeout (then the connection is dropped)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._query, sql), LEADERSHIP_QUERY_TIMEOUT_SECONDS)
        except Exception as exc:
            _log.warning("Leader election query failed", replica_id=self.replica_id, error=repr(exc))
            if self._lock.acquire(blocking=False):  # a query still hanging keeps its connection until it ends
                try:
                    self._drop()
                finally:
                    self._lock.release()
            return False

    async def still_leading(self) -> bool:
        if not self._leading:
            return False
        held = await self._ask(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            " AND granted AND classid = :a AND objid = :b AND objsubid = 2)"
        )
        if not held:
            self._leading = False
        return held

    async def run(self, on_gain: OnChange, on_loss: OnChange, stop: asyncio.Event) -> None:
        """Takes and keeps the lock until ``stop``: ``on_gain`` once it leads, ``on_loss`` once it no longer does."""
        gained = False  # whether on_gain ran without its on_loss yet (the fence may find the loss first)
        sit_out = 0  # checks to skip before competing again: a replica that just lost its lock lets the others lead
        while not stop.is_set():
            if gained:
                if not await self.still_leading():
                    gained = False
                    sit_out = LOST_LEADER_SITS_OUT_CHECKS
                    _log.error("Leadership lost; singleton loops stopped", replica_id=self.replica_id)
                    await on_loss()
            elif sit_out:
                sit_out -= 1
            elif await self._ask("SELECT pg_try_advisory_lock(:a, :b)"):
                self._leading = gained = True
                _log.info("Leadership taken", replica_id=self.replica_id)
                await on_gain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.check_interval_seconds)
        self._leading = False
        if gained:
            await on_loss()

    async def close(self) -> None:
        """Drops the lock connection (the lock with it) and the engine."""
        self._leading = False

        def close() -> None:
            with self._lock:
                self._drop()
            self._engine.dispose()

        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.to_thread(close), LEADERSHIP_QUERY_TIMEOUT_SECONDS)

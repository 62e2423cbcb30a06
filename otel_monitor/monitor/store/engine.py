"""Column types, engines and connection settings shared by the monitor's stores (quota history, alerting tables)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

__all__ = [
    "UTCDateTime",
    "POSTGRES_CONNECT_TIMEOUT_SECONDS",
    "STORE_THREAD_WAIT_SECONDS",
    "SQLITE_DEFAULT_BUSY_SECONDS",
    "postgres_connect_args",
    "store_engine",
    "is_in_memory_sqlite",
]

_UTC = dt.UTC
# A PostgreSQL that accepts connections and never answers fails a store call after this long, not never.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# A store call that finds none of its store's threads free within this long fails without running (BlockingExecutor's
# start timeout), instead of queueing behind a call hanging on the database.
STORE_THREAD_WAIT_SECONDS = 5
# How long SQLite waits for another writer's lock before a write fails, unless a store says otherwise (Python's
# sqlite3 default).
SQLITE_DEFAULT_BUSY_SECONDS = 5.0


def is_in_memory_sqlite(url: URL | str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def store_engine(url: URL | str, *, sqlite_busy_seconds: float = SQLITE_DEFAULT_BUSY_SECONDS) -> Engine:
    """An engine on a store's database. SQLite: usable from the store's threads, waiting ``sqlite_busy_seconds`` for
    another writer; in memory, one connection, which the database lives in. PostgreSQL (or another server): checked
    before use, with ``postgres_connect_args``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        options: dict = {"connect_args": {"check_same_thread": False, "timeout": sqlite_busy_seconds}}
        if is_in_memory_sqlite(parsed):
            options["poolclass"] = StaticPool
        return create_engine(parsed, **options)
    return create_engine(parsed, pool_pre_ping=True, connect_args=postgres_connect_args(parsed.get_backend_name()))


def postgres_connect_args(backend: str) -> dict:
    """The DBAPI connect arguments of a store engine on ``backend`` (a SQLAlchemy backend name).

    On PostgreSQL: the connect timeout, and TCP keepalives with a TCP user timeout, so that a server or network that
    goes silent on an open (pooled) connection fails the call within about half a minute instead of never."""
    if backend != "postgresql":
        return {}
    # libpq options. Keepalives: a connection silent for 10 s (idle in the pool, or waiting for the reply to a query
    # the server's kernel acknowledged) is probed every 5 s, and dropped after 3 unanswered probes. tcp_user_timeout:
    # data sent and not acknowledged for 30 s (a query into a dead host or a dropped network) drops the connection;
    # Linux also lets it decide when unanswered probes drop it, so a silent peer fails the call in 30-40 s. Neither
    # notices a peer whose kernel acknowledges everything while nothing replies (a blackhole listener, a hung
    # backend): the connect timeout covers that while connecting; once connected, the call holds one of its store's
    # threads until it ends, and stopping the service leaves it behind.
    return {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out; SQLite keeps no zone, so naive values read back are UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(_UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)

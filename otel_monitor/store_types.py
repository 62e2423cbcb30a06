"""Column types and connection settings shared by the monitor's stores (quota history, alerting tables)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime", "POSTGRES_CONNECT_TIMEOUT_SECONDS", "STORE_THREAD_WAIT_SECONDS", "postgres_connect_args"]

_UTC = dt.timezone.utc
# A PostgreSQL that accepts connections and never answers fails a store call after this long, not never.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# A store call that finds none of its store's threads free within this long fails without running (BlockingExecutor's
# start timeout), instead of queueing behind a call hanging on the database.
STORE_THREAD_WAIT_SECONDS = 5


def postgres_connect_args(backend: str) -> dict:
    """The DBAPI connect arguments of a store engine on ``backend`` (a SQLAlchemy backend name)."""
    return {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS} if backend == "postgresql" else {}


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

"""The database check: the backend's PostgreSQL answers a query on a new connection, and how many are open.

The check's one query reads the server's open connections too (``numbackends`` summed over ``pg_stat_database``,
which any role may read, unlike other roles' rows of ``pg_stat_activity``; the check's own connection included). It
is kept on the check (``open_connections``) for the metrics, not put in the report, whose fields are fixed
(``status``, ``latency_ms``, ``error``).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.monitor.health.checks.base import (
    BACKSTOP_SECONDS,
    BaseCheck,
    confirmed_latency_ms,
    describe_error,
    latency_result,
    register_url_secret,
)
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["DatabaseCheck"]


def _libpq_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


class DatabaseCheck(BaseCheck):
    """PostgreSQL answers a query on a new connection (psycopg 3, async); latency covers connect and query.

    The query counts the server's open connections: ``open_connections`` holds the count of the last run, None
    before the first and after a run that failed or was cut short.
    """

    name = "database"
    error_code = SystemErrorCode.DATABASE_CONNECTION_FAILED
    _fields = ("latency_ms",)
    # Backends connected to a database (clients, autovacuum workers), not the server's own background processes.
    _CONNECTIONS_QUERY = "SELECT coalesce(sum(numbackends), 0)::int FROM pg_stat_database"

    def __init__(
        self, url: str, *, latency_degraded_ms: float = 500.0, scrubber: SecretScrubber = default_scrubber
    ) -> None:
        import psycopg  # noqa: F401 - fail at construction, not at the first check

        self._conninfo = _libpq_url(url)
        self._latency_degraded_ms = latency_degraded_ms
        self._scrubber = scrubber
        self.open_connections: int | None = None
        register_url_secret(url, scrubber)

    async def run(self) -> dict[str, Any]:
        import psycopg

        self.open_connections = None  # a run the service's timeout cancels must not leave the last count behind
        try:
            latency_ms = await confirmed_latency_ms(self._connect_and_query, self._latency_degraded_ms)
        except (psycopg.Error, OSError) as exc:
            self.open_connections = None
            return self.failed(describe_error(exc, self._scrubber))
        return latency_result(latency_ms, self._latency_degraded_ms)

    async def _connect_and_query(self) -> float:
        import psycopg

        started = time.perf_counter()
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, connect_timeout=BACKSTOP_SECONDS)
        try:
            row = await (await conn.execute(self._CONNECTIONS_QUERY)).fetchone()
        finally:
            await conn.close()
        self.open_connections = row[0] if row else None
        return (time.perf_counter() - started) * 1000

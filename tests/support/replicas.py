"""Monitor replicas on one PostgreSQL, shared by the failover test and bench: two Redis P0 rules, and the
leader-election connection of a replica found and cut."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tools.devstack.rules import shipped_rule

# Long enough that the second P0 is still pending when the leader is killed, right after the first fires.
ABOUT_TO_FIRE_SECONDS = 6


def _p0(name: str, for_seconds: int) -> dict:
    return shipped_rule("RedisDown", name=name, for_seconds=for_seconds, clear_for_seconds=0, interval_seconds=1)


RULES = {"rules": [_p0("RedisDown", 0), _p0("RedisStillDown", ABOUT_TO_FIRE_SECONDS)]}


def lock_connection_backends(store_url: str, replica_id: str) -> list[int]:
    """The server processes of ``replica_id``'s leader-election connection (by its application name)."""
    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": f"otel-monitor leader election {replica_id}"},
            )
            return [row.pid for row in rows]
    finally:
        engine.dispose()


def terminate_backends(store_url: str, pids: list[int]) -> None:
    """Ends those server processes (pg_terminate_backend), as a cut connection would."""
    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            for pid in pids:
                assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        engine.dispose()

"""Brings a store's database to the latest Alembic revision (every table of ``schema``) on first use, on SQLite
and PostgreSQL, when several monitors start on one database at once too."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:  # Alembic is imported on first migration, not with the stores
    from alembic.config import Config

__all__ = ["upgrade_to_head", "head_revision", "current_revision", "MIGRATIONS_DIR", "VERSION_TABLE"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Our own version table, so that the backend's own Alembic history can share the database. It keeps the name it had
# when it versioned the quota table alone: the databases of earlier releases record their revision in it.
VERSION_TABLE = "otel_monitor_quota_alembic_version"
# The PostgreSQL advisory lock held while migrating: of monitors starting at once on one database, one migrates
# and the others wait for it, then find the database at head. Any fixed bigint, the same in every release.
_POSTGRES_MIGRATION_LOCK = 0x6F74_656C_6D6F_6E31
# How long a migration on PostgreSQL waits for that lock, or for a table another session holds, before it fails (and
# the store's next call tries again), instead of holding one of the store's threads behind a stuck monitor forever.
_POSTGRES_LOCK_WAIT = "60s"
# Alembic's ``op`` and ``context`` are module-level proxies: two migrations at once in one process (the alerting
# stores open on their own threads) would run one's DDL on the other's connection, which SQLite answers with a
# crash. A process runs one migration at a time; the database lock below serialises the processes.
_ONE_MIGRATION_AT_A_TIME = threading.Lock()


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The latest revision of the migrations shipped with this release."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database of ``connection`` is at; None before the first migration."""
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Upgrades the database of ``engine`` to head: ``alembic upgrade head``, run by every store on first use.

    At head (the usual start) it only reads the version. Otherwise it migrates in one transaction holding a lock
    that other monitors' migrations wait for (PostgreSQL: an advisory lock; SQLite: the database's write lock,
    waited for up to the engine's busy timeout), so each revision runs once; a waiting monitor then finds the
    database at head. Raises what the database raised; nothing is left half done."""
    with engine.connect() as connection:
        if current_revision(connection) == head_revision():
            return
    from alembic import command

    with _ONE_MIGRATION_AT_A_TIME, engine.connect() as connection:
        _wait_for_other_migrations(connection)
        command.upgrade(_alembic_config(connection), "head")
        connection.commit()


def _wait_for_other_migrations(connection: Connection) -> None:
    """Starts the migration's transaction by taking the lock that serialises migrations of one database."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{_POSTGRES_LOCK_WAIT}'")
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
    elif dialect == "sqlite":
        # The write lock now, not at the first write: a second monitor must not read the schema while the first
        # changes it. SQLite's schema changes are transactional, so the lock covers the whole upgrade.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

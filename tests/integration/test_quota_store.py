"""The quota store on SQLite and on a real PostgreSQL: migrations, a row per check, and a clear 503 when broken."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, inspect, text

from otel_monitor.monitor.quota.monitor import QuotaMonitor
from otel_monitor.monitor.quota.reset_schedule import ResetRule
from otel_monitor.monitor.quota.router import build_quota_router
from otel_monitor.monitor.quota.service import QuotaService
from otel_monitor.monitor.quota.store import QuotaStore, QuotaStoreError
from otel_monitor.monitor.quota.testing import FixedQuotaSource
from otel_monitor.monitor.store.migration import VERSION_TABLE, head_revision
from otel_monitor.monitor.store.schema import metadata
from tests.support.backends import fresh_postgres_database
from tests.support.stacks import private_stack
from tools.devstack import free_port

UTC = dt.UTC
PASSWORD = "s3cr3t-Pa55word"


@pytest.fixture(scope="module")
def postgres():
    """A private PostgreSQL 15 on a free port, for this module."""
    with private_stack("otel-monitor-quota-pg-", "postgres") as stack:
        yield stack


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.stack)])
def store_url(request, tmp_path):
    """A new, empty database: a SQLite file, or a database on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'quota.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres").postgres_url, "quota")


def test_migrations_create_the_schema(store_url):
    """Migrating brings the schema to head: the table and index as the models say, in our own version table."""
    store = QuotaStore(store_url)
    store.migrate()
    store.migrate()  # idempotent
    engine = create_engine(store_url)
    try:
        inspector = inspect(engine)
        assert {"quota_usage", VERSION_TABLE} <= set(inspector.get_table_names())
        assert {c["name"] for c in inspector.get_columns("quota_usage")} == {
            "id",
            "service",
            "used",
            "total",
            "percentage",
            "timestamp",
        }
        with engine.connect() as connection:
            version = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            assert version == head_revision()
            from alembic.autogenerate import compare_metadata
            from alembic.migration import MigrationContext

            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
        store.close()


@pytest.mark.asyncio
async def test_every_check_persists_a_row(store_url):
    """Each check of a monitor on the store adds a row; times come back as aware UTC, oldest first."""
    store = QuotaStore(store_url)
    times = iter([dt.datetime(2026, 3, 8, h, 0, 0, 123000, tzinfo=UTC) for h in (9, 10, 11)])
    monitor = QuotaMonitor(store, clock=lambda: next(times))
    try:
        for used in (100, 850, 950):
            assert (await monitor.check_quota("gemini", used, 1000)).stored
        rows = store.history("gemini")
        assert [(r.used, r.total, r.percentage) for r in rows] == [(100, 1000, 10), (850, 1000, 85), (950, 1000, 95)]
        assert [r.timestamp for r in rows] == [
            dt.datetime(2026, 3, 8, h, 0, 0, 123000, tzinfo=UTC) for h in (9, 10, 11)
        ]
        assert store.latest("gemini").used == 950
        assert store.history("gemini", since=dt.datetime(2026, 3, 8, 10, tzinfo=UTC))[0].used == 850
        assert (store.count("gemini"), store.count("d-id")) == (3, 0)
    finally:
        store.close()


def test_store_survives_reopening(tmp_path):
    """Rows stay in the SQLite file across store instances (restarts)."""
    url = f"sqlite:///{tmp_path / 'quota.db'}"
    first = QuotaStore(url)
    first.add("youtube", 1600, 10000, 16, dt.datetime(2026, 1, 1, tzinfo=UTC))
    first.close()
    second = QuotaStore(url)
    assert second.latest("youtube").used == 1600
    second.close()


def _corrupt_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database file " * 200)
    return f"sqlite:///{path}"


def _unreachable_postgres(_tmp_path: Path) -> str:
    return f"postgresql+psycopg://quota:{PASSWORD}@127.0.0.1:{free_port()}/quota"


@pytest.mark.parametrize(
    "make_url, store_name, reason",
    [
        (_corrupt_sqlite, "corrupt.db", "file is not a database"),
        (_unreachable_postgres, "postgresql+psycopg://quota:***@127.0.0.1:", "Connection refused"),
    ],
)
@pytest.mark.asyncio
async def test_broken_store(tmp_path, caplog, make_url, store_name, reason):
    """A corrupt or unreachable store: an error naming it, logged checks, 503 JSON; the password appears nowhere."""
    caplog.set_level(logging.INFO)
    url = make_url(tmp_path)
    store = QuotaStore(url)
    with pytest.raises(QuotaStoreError) as caught:
        store.migrate()
    assert store_name in caught.value.store and reason in str(caught.value)

    check = await QuotaMonitor(store).check_quota("gemini", 850, 1000)
    assert check.stored is False and check.status == "warning"

    service = QuotaService(store, {"gemini": FixedQuotaSource("gemini", 10, 1000, ResetRule.daily())})
    await service.start()  # logs, does not raise
    app = FastAPI()
    app.include_router(build_quota_router(service))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://quota") as client:
        response = await client.get("/api/v1/system/quota")
    await service.stop()
    assert response.status_code == 503
    body = response.json()
    assert set(body) == {"error", "store"} and store_name in body["store"] and reason in body["error"]
    assert "Traceback" not in response.text
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "Quota usage not stored" in logged and "Quota store unavailable" in logged
    assert "DATABASE_CONNECTION_FAILED" in logged
    for text_ in (response.text, logged, str(caught.value), repr(caught.value)):
        assert PASSWORD not in text_


def test_store_comes_back(tmp_path):
    """A store that failed is tried again on the next call, and used once it works."""
    url = _corrupt_sqlite(tmp_path)
    store = QuotaStore(url)
    with pytest.raises(QuotaStoreError):
        store.count()
    (tmp_path / "corrupt.db").unlink()  # the operator replaces the broken file
    assert store.count() == 0
    store.close()

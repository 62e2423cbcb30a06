"""The stores' one Alembic history on SQLite and a real PostgreSQL: a fresh database, a database of the previous
release (alerting tables made outside Alembic, with or without their newer columns), and monitors starting at once."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from otel_monitor.monitor.alerting.delivery.digest import DigestStore
from otel_monitor.monitor.alerting.delivery.outbox import DeliveryStatus, Outbox
from otel_monitor.monitor.alerting.incidents import IncidentStatus, IncidentStore
from otel_monitor.monitor.alerting.state import AlertStore
from otel_monitor.monitor.quota.store import QuotaStore
from otel_monitor.monitor.store.engine import store_engine
from otel_monitor.monitor.store.migration import VERSION_TABLE, current_revision, head_revision, upgrade_to_head
from otel_monitor.monitor.store.schema import metadata
from tests.support.alerts import make_alert
from tests.support.backends import fresh_postgres_database
from tests.support.paths import REPO_ROOT
from tests.support.stacks import private_stack

REPO = REPO_ROOT
PREVIOUS_RELEASE = REPO / "tests" / "testdata" / "store"
UTC = dt.UTC
T0 = dt.datetime(2025, 10, 20, 10, 30, tzinfo=UTC)
ALERTING_TABLES = {
    "alerts",
    "incidents",
    "alert_outbox",
    "alert_delivery_attempts",
    "alert_digest_entries",
    "alert_digest_sent_hours",
    "silences",
    "alert_acks",
    "alert_escalations",
    "incident_events",
}


@pytest.fixture(scope="module")
def postgres():
    """A private PostgreSQL on a free port, for this module."""
    with private_stack("otel-monitor-migrations-pg-", "postgres") as stack:
        yield stack


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.stack)])
def database_url(request, tmp_path):
    """A new, empty database: a SQLite file, or a database on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres").postgres_url, "migrations")


def run_sql(url: str, *names: str) -> None:
    """Runs the testdata files ``names`` (for the URL's dialect) on the database, as the previous release left it."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for name in names:
                script = (PREVIOUS_RELEASE / engine.dialect.name / f"{name}.sql").read_text()
                for statement in filter(str.strip, script.split(";\n")):
                    connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def schema_differences(url: str) -> list:
    """What Alembic's autogenerate finds between the database and the models (empty: the database is at head)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def revision_and_tables(url: str) -> tuple[str | None, set[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return current_revision(connection), set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def rows_of(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def migrate(url: str) -> None:
    engine = store_engine(url)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()


def test_fresh_database_gets_every_table(database_url):
    """An empty database is brought to head: every table of the models, exactly as they say, in our version table."""
    migrate(database_url)
    migrate(database_url)  # at head: nothing to do
    revision, tables = revision_and_tables(database_url)
    assert revision == head_revision() == "0007_alert_logs_url"
    assert tables == {VERSION_TABLE, "quota_usage", *ALERTING_TABLES, "status_uptime_days"}
    assert schema_differences(database_url) == []


@pytest.mark.parametrize(
    "previous",
    [
        pytest.param(["quota_usage_at_0001"], id="quota-only"),
        pytest.param(["quota_usage_at_0001", "alerting_tables_first_shape", "previous_rows"], id="before-new-columns"),
        pytest.param(
            ["quota_usage_at_0001", "alerting_tables_first_shape", "alerting_columns_added", "previous_rows"],
            id="with-new-columns",
        ),
        pytest.param(
            ["alerting_tables_first_shape", "alerting_columns_added", "previous_rows"], id="alerting-store-of-its-own"
        ),
    ],
)
def test_previous_release_database_is_upgraded(database_url, previous):
    """A database of the previous release (the quota table at 0001; alerting tables made on first use, with or
    without the columns added later; or an alerting store on a URL of its own, never versioned) reaches head with
    its rows kept, and the stores work on it."""
    run_sql(database_url, *previous)
    quota = QuotaStore(database_url)
    alerts, outbox = AlertStore(database_url, clock=lambda: T0), Outbox(database_url, clock=lambda: T0)
    incidents = IncidentStore(database_url)
    try:
        quota.migrate()
        assert revision_and_tables(database_url)[0] == head_revision()
        assert schema_differences(database_url) == []
        if "previous_rows" in previous:
            [kept] = alerts.history()
            assert (kept.fingerprint, kept.value, kept.starts_at) == ("previous-release-fp", 97.5, T0)
            assert rows_of(database_url, "SELECT notification_id, channel, status FROM alert_outbox") == [
                ("previous-release-notification", "hook", DeliveryStatus.PENDING)
            ]
            [incident] = incidents.incidents()  # "closed" in the previous release
            assert (incident.fingerprint, incident.status) == ("previous-release-fp", IncidentStatus.RESOLVED)
        # The columns the previous release may have lacked are written and read back.
        alert = make_alert(fingerprint="after-upgrade", value=3.0, starts_at=T0)
        alerts.upsert(alert)
        [episode] = alerts.episodes_between(T0, T0 + dt.timedelta(hours=1))
        assert (episode.alert.fingerprint, episode.fired_at, episode.min_value, episode.max_value) == (
            "after-upgrade",
            T0,
            3.0,
            3.0,
        )
        quota.add("gemini", 10, 100, 10.0, T0)
        assert quota.count("gemini") == 1
    finally:
        for store in (quota, alerts, outbox, incidents):
            store.close()
        for store in (alerts, outbox, incidents):
            store.executor.shutdown()


def test_failed_upgrade_changes_nothing(database_url):
    """A database the migration cannot bring to head (a table lacking a required column) is left as it was: the
    error is raised and no table of the revision is created."""
    run_sql(database_url, "quota_usage_at_0001")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:  # the last table the revision looks at, without its required column
            kind = "DATETIME" if engine.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
            connection.exec_driver_sql(f"CREATE TABLE alert_digest_sent_hours (period_start {kind} PRIMARY KEY)")
    finally:
        engine.dispose()
    with pytest.raises(RuntimeError, match="alert_digest_sent_hours lacks the required column sent_at"):
        migrate(database_url)
    assert revision_and_tables(database_url) == (
        "0001_quota_usage",
        {VERSION_TABLE, "quota_usage", "alert_digest_sent_hours"},
    )


_START_MONITOR = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from otel_monitor.monitor.store.engine import store_engine
    from otel_monitor.monitor.store.migration import upgrade_to_head

    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    engine = store_engine(url, sqlite_busy_seconds=30)
    with engine.connect():
        pass  # connected before the start, so that every monitor migrates at the same moment
    ready.touch()
    while not go.exists():
        time.sleep(0.001)
    upgrade_to_head(engine)
""")


@pytest.mark.parametrize(
    "previous",
    [
        pytest.param([], id="fresh"),
        pytest.param(["quota_usage_at_0001", "alerting_tables_first_shape", "previous_rows"], id="previous-release"),
    ],
)
def test_monitors_starting_at_once_migrate_once(database_url, previous, tmp_path):
    """Three monitor processes migrating one database at the same moment all start, and the database is at head."""
    run_sql(database_url, *previous)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{index}" for index in range(3)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _START_MONITOR, database_url, str(flag), str(go)],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        errors = [child.communicate(timeout=60)[1] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert [child.returncode for child in children] == [0, 0, 0], errors
    assert revision_and_tables(database_url)[0] == head_revision()
    assert schema_differences(database_url) == []


def test_stores_of_one_monitor_opening_at_once(database_url):
    """The quota store and the four alerting stores of one monitor open their engines on one database at once, each
    on its own thread: every one of them works."""
    stores = [
        QuotaStore(database_url),
        AlertStore(database_url),
        Outbox(database_url),
        IncidentStore(database_url),
        DigestStore(database_url),
    ]
    reads = [lambda: stores[0].count(), stores[1].history, stores[2].entries, stores[3].incidents, stores[4].count]
    start = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def open_(read) -> None:
        start.wait()
        try:
            read()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_, args=(read,)) for read in reads]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for store in stores:
            store.close()
            store.executor.shutdown()
    assert failures == []
    assert revision_and_tables(database_url)[0] == head_revision()


def test_stores_on_different_databases_migrate_at_once_in_one_process(tmp_path):
    """Stores of one process on different databases (in-memory and files) opening at once on their own threads
    each reach head with the whole schema: one migration's DDL never runs on another's connection."""
    urls = ["sqlite://"] * 4 + [f"sqlite:///{tmp_path / f'store-{n}.db'}" for n in range(4)]
    for _ in range(3):
        engines = [store_engine(url) for url in urls]
        start = threading.Barrier(len(engines))
        failures: list[BaseException] = []

        def migrate(engine, start=start, failures=failures):
            start.wait()
            try:
                upgrade_to_head(engine)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=migrate, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        for engine in engines:
            with engine.connect() as connection:
                assert current_revision(connection) == head_revision()
                assert set(metadata.tables) <= set(inspect(connection).get_table_names())
            engine.dispose()
        for path in tmp_path.glob("store-*.db"):
            path.unlink()

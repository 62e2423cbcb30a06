"""Fixtures starting the real stack (collector, Jaeger, Prometheus, Redis) and the fake providers, on loopback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The HTTP conventions setup_telemetry opts into, fixed before any instrumentation reads them (they are read once per
# process): every test sees the spans a backend sees, whichever test happens to set telemetry up first.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

from tests.support.stacks import private_stack, server_workdir


def pytest_collection_modifyitems(config, items):
    """Marks each test by its directory: ``unit`` (tests/unit, no real server) or ``integration`` (tests/integration,
    real servers started by the tests), so ``pytest -m unit`` runs the fast half."""
    for item in items:
        parts = item.path.relative_to(config.rootpath).parts
        if parts[:2] == ("tests", "unit"):
            item.add_marker(pytest.mark.unit)
        elif parts[:2] == ("tests", "integration"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack():
    """The collector, Jaeger, Prometheus (scraping every second), Redis and PostgreSQL, on free ports."""
    with private_stack("otel-monitor-stack-") as dev:
        yield dev


@pytest.fixture(scope="session")
def fakes():
    """The four fake providers, each on its own port."""
    from examples.demo_backend.launcher import fake_provider_credentials
    from examples.fake_providers import FakeProviders

    with FakeProviders(**fake_provider_credentials()) as running:
        yield running


@pytest.fixture
def workdir():
    path = server_workdir("otel-monitor-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- where alerts go: local receivers (tests/support/receivers.py) ------------------------------------------------
@pytest.fixture
def receiver():
    """A local HTTP receiver recording every request (webhook, Slack, PagerDuty... paths)."""
    from tests.support.receivers import Receiver

    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def sentry_endpoint():
    """A local endpoint accepting Sentry envelopes."""
    from tests.support.receivers import SentryEndpoint

    endpoint = SentryEndpoint().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def smtp_inbox():
    """A local SMTP server (aiosmtpd) keeping every message."""
    from tests.support.receivers import SmtpInbox

    inbox = SmtpInbox().start()
    yield inbox
    inbox.stop()


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager on a free port."""
    from tests.support.receivers import ALERTMANAGER, AlertmanagerServer

    if not Path(ALERTMANAGER).exists():
        pytest.fail(f"{ALERTMANAGER} is not installed (scripts/install-system-packages.sh installs it)")
    server = AlertmanagerServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis():
    """A Redis of this test alone, so it can be stopped and started again on the same port."""
    with private_stack("otel-monitor-own-redis-", "redis") as redis:
        yield redis


# -- stores --------------------------------------------------------------------------------------------------------
@pytest.fixture
def postgres_url(stack):
    """A new, empty database on the stack's real PostgreSQL."""
    from tests.support.backends import fresh_postgres_database

    return fresh_postgres_database(stack.postgres_url, "alerts")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.stack)])
def store_url(request, tmp_path):
    """A new alerting store: a SQLite file, or a database on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.db'}"
    return request.getfixturevalue("postgres_url")

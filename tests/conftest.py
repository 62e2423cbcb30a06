"""Fixtures starting the real stack (collector, Jaeger, Prometheus, Redis) and the fake providers, on loopback."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from otel_monitor.devstack import DevStack, StackPorts


def _workdir(prefix: str) -> Path:
    # Not pytest's tmp dirs (mode 0700): PostgreSQL runs as its own user and must reach its data dir.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="session")
def stack():
    """The collector, Jaeger, Prometheus (scraping every second), Redis and PostgreSQL, on free ports."""
    workdir = _workdir("otel-monitor-stack-")
    dev = DevStack(workdir, StackPorts.free(), scrape_interval="1s")
    dev.start("jaeger", "prometheus", "redis", "postgres", "collector")
    yield dev
    dev.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def fakes():
    """The four fake providers, each on its own port."""
    from examples.demo_backend.launcher import fake_provider_credentials
    from examples.fake_providers import FakeProviders

    with FakeProviders(**fake_provider_credentials()) as running:
        yield running


@pytest.fixture
def workdir():
    path = _workdir("otel-monitor-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)

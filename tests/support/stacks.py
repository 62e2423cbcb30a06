"""Servers of a test's own: parts of the stack on free ports in a work dir PostgreSQL can reach."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tools.devstack import DevStack, StackPorts

__all__ = ["server_workdir", "private_stack"]


def server_workdir(prefix: str) -> Path:
    """A new directory for servers. Not pytest's tmp dirs (mode 0700): PostgreSQL runs as its own user and must
    reach its data dir."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


@contextlib.contextmanager
def private_stack(prefix: str, *components: str) -> Iterator[DevStack]:
    """The named components (all when none) on free ports, Prometheus scraping every second; stopped and removed
    afterwards."""
    workdir = server_workdir(prefix)
    dev = DevStack(workdir, StackPorts.free(), scrape_interval="1s")
    try:
        yield dev.start(*components)
    finally:
        dev.stop()
        shutil.rmtree(workdir, ignore_errors=True)

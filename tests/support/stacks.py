"""Servers of a test's own: parts of the stack on free ports in a work dir PostgreSQL can reach."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

from tools.devstack import DevStack, StackPorts, server_workdir

__all__ = ["server_workdir", "private_stack"]


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

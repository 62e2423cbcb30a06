"""The local stack (collector, Jaeger, Prometheus, blackbox exporter, Redis, PostgreSQL) on loopback, for `make demo`,
tests and benches.

The demo as a whole (stack, fake providers, demo backend, monitor) is `tools.devstack.demo.DemoRun`; it is not
imported here because it builds on `examples/`, which itself uses this package.
"""

from tools.devstack.processes import ManagedProcess, free_port, wait_until
from tools.devstack.stack import DevStack, StackPorts, server_workdir

__all__ = ["DevStack", "StackPorts", "ManagedProcess", "free_port", "server_workdir", "wait_until"]

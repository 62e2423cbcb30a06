"""The local stack (collector, Jaeger, Prometheus, Redis, PostgreSQL) on loopback, for `make demo`, tests and benches."""

from tools.devstack.processes import ManagedProcess, free_port, wait_until
from tools.devstack.stack import DevStack, StackPorts

__all__ = ["DevStack", "StackPorts", "ManagedProcess", "free_port", "wait_until"]

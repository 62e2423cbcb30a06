"""The local stack (collector, Jaeger, Prometheus, Redis, PostgreSQL) on loopback, for `make demo`, tests and benches."""

from otel_monitor.devstack.processes import ManagedProcess, free_port, wait_until
from otel_monitor.devstack.stack import DevStack, StackPorts

__all__ = ["DevStack", "StackPorts", "ManagedProcess", "free_port", "wait_until"]

"""Helpers of the integration tests: reading Prometheus, Jaeger and log files."""

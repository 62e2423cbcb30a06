"""Reads what the real back ends hold: Prometheus series, Jaeger traces, VictoriaLogs lines, JSON log lines."""

from __future__ import annotations

import json
import socket
import uuid

import httpx

from otel_monitor.logs.files import read_log_records as read_log_lines  # noqa: F401 - re-exported for tests
from otel_monitor.monitor.alerting.links import logs_query
from tools.devstack import free_port, wait_until


def prom_query(prometheus_url: str, promql: str) -> list[dict]:
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def prom_values(prometheus_url: str, promql: str, by: tuple[str, ...]) -> dict[tuple, float]:
    """{(label values...): value} of an instant query."""
    return {
        tuple(r["metric"].get(label, "") for label in by): float(r["value"][1])
        for r in prom_query(prometheus_url, promql)
    }


def wait_for_prom(prometheus_url: str, promql: str, by: tuple[str, ...], expected: dict, timeout: float = 60):
    """Waits until the query gives exactly ``expected``; returns the last result either way for the assert."""
    last: dict = {}

    def matches():
        nonlocal last
        last = prom_values(prometheus_url, promql, by)
        return last == expected

    try:
        wait_until(matches, timeout, interval=1.0, what=promql)
    except TimeoutError:
        pass
    return last


def jaeger_trace(jaeger_url: str, trace_id: str) -> dict | None:
    response = httpx.get(f"{jaeger_url}/api/traces/{trace_id}", timeout=10)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    data = response.json().get("data") or []
    return data[0] if data else None


def victorialogs_lines(victorialogs_url: str, trace_id: str) -> list[dict]:
    """The log lines VictoriaLogs' query API returns for ``trace_id`` (one JSON object a line)."""
    response = httpx.get(f"{victorialogs_url}/select/logsql/query", params={"query": logs_query(trace_id)}, timeout=10)
    response.raise_for_status()
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def span_tags(span: dict) -> dict:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def fresh_postgres_database(server_url: str, prefix: str = "test") -> str:
    """A new, empty database on the PostgreSQL server of ``server_url`` (retried while the server starts up:
    its port opens before it accepts sessions); returns its URL."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    def create() -> bool:
        engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return True

    wait_until(create, 30, what="PostgreSQL accepting sessions")
    return server_url.rsplit("/", 1)[0] + "/" + name


def closed_port() -> int:
    """A loopback port nothing listens on (picked where the stack picks its servers' ports)."""
    return free_port()


def blackhole_server() -> socket.socket:
    """A listening socket whose connections are accepted by the kernel and never answered."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock

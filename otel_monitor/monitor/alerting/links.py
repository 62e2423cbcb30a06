"""Where an alert about a failing call points: its trace in Jaeger and its log lines in VictoriaLogs."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["logs_link", "logs_query", "trace_link"]


def trace_link(jaeger_base: str, trace_id: str) -> str:
    """The trace in Jaeger's UI."""
    return f"{jaeger_base.rstrip('/')}/trace/{trace_id}"


def logs_query(trace_id: str) -> str:
    """The LogsQL filter of a trace's log lines (VictoriaLogs keeps an OTLP record's trace id as ``trace_id``)."""
    return f'trace_id:"{trace_id}"'


def logs_link(victorialogs_base: str, trace_id: str) -> str:
    """The trace's log lines in VictoriaLogs' web UI (vmui)."""
    return f"{victorialogs_base.rstrip('/')}/select/vmui/#/?query={quote(logs_query(trace_id), safe='')}"

"""The links an alert about a failing call carries: its trace in Jaeger and its log lines in VictoriaLogs."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from otel_monitor.monitor.alerting.links import logs_link, logs_query, trace_link

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "build, base, expected",
    [
        (trace_link, "http://jaeger:16686", f"http://jaeger:16686/trace/{TRACE_ID}"),
        (trace_link, "http://jaeger:16686/", f"http://jaeger:16686/trace/{TRACE_ID}"),
        (logs_link, "http://logs:9428", f"http://logs:9428/select/vmui/#/?query=trace_id%3A%22{TRACE_ID}%22"),
        (
            logs_link,
            "https://logs.example/vl/",
            f"https://logs.example/vl/select/vmui/#/?query=trace_id%3A%22{TRACE_ID}%22",
        ),
    ],
)
def test_links_of_a_trace(build, base, expected):
    """Each link joins its base (with or without a trailing slash) and the trace id."""
    assert build(base, TRACE_ID) == expected


def test_logs_link_carries_the_logsql_query_of_the_trace():
    """The UI link's query, decoded, is the LogsQL filter the query API takes for the trace."""
    query = logs_link("http://logs:9428", TRACE_ID).split("query=", 1)[1]
    assert unquote(query) == logs_query(TRACE_ID) == f'trace_id:"{TRACE_ID}"'

"""Exemplars end to end: a latency histogram's exemplars in the real Prometheus name traces the real Jaeger holds."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
import yaml

from otel_monitor.instrument.metrics import PromNames
from tests.support.backends import jaeger_trace
from tests.support.demo import create_project, demo_backend, wait_finished
from tools.dashboards.pipeline import DURATION_BUCKETS as SPAN_DURATION_BUCKETS
from tools.devstack import server_workdir, wait_until
from tools.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.stack

# The SDK keeps a histogram bucket's exemplar for one export interval only (the next export has none, and the
# collector's exporter shows the latest point): exporting every 3 s while the stack scrapes every second lets
# Prometheus scrape each exemplar at least twice, so the failing call's own exemplar cannot slip between scrapes.
METRIC_EXPORT_INTERVAL_SECONDS = 3.0

# The exemplar label Grafana's Prometheus data source opens in Jaeger: the exemplars must carry it.
TRACE_ID_LABEL = next(
    source["jsonData"]["exemplarTraceIdDestinations"][0]["name"]
    for source in yaml.safe_load((REPO_ROOT / "config/grafana/datasources.yml").read_text())["datasources"]
    if source["type"] == "prometheus"
)

# (histogram, the labels of the failing Gemini call's series): the SDK's call duration and the collector's span
# metrics (its exemplars are those of one flush, kept in the exporter until the next).
HISTOGRAMS = [
    pytest.param(f"{PromNames.CALL_DURATION}_bucket", {"service": "gemini", "outcome": "error"}, id="call-duration"),
    pytest.param(
        SPAN_DURATION_BUCKETS,
        {"external_api_service": "gemini", "external_api_outcome": "error"},
        id="span-metrics",
    ),
]


@pytest.fixture(scope="module")
def traffic(stack, fakes):
    """The demo backend after three good projects through Gemini, then one whose Gemini call fails (invalid key);
    yields (the demo, the failing project's trace_id, when the traffic began)."""
    workdir = server_workdir("otel-monitor-exemplars-")
    demo = demo_backend(
        stack, fakes, workdir, f"exemplars{int(time.time())}", metric_export_interval=METRIC_EXPORT_INTERVAL_SECONDS
    )
    began = time.time()
    try:
        with demo:
            wait_finished(demo, {create_project(demo, ["gemini"])["project_id"] for _ in range(3)})
            fakes.set_fault("gemini", mode="invalid_key", latencies=[0])
            failing = create_project(demo, ["gemini"])
            wait_finished(demo, {failing["project_id"]})
            fakes.set_fault("gemini", mode="ok", latencies=[0])
            yield demo, failing["trace_id"], began
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _exemplar_trace_ids(prometheus_url: str, selector: str, since: float) -> set[str]:
    """The trace id (TRACE_ID_LABEL) of every exemplar Prometheus stores for the series ``selector`` matches since
    ``since``; a KeyError if one lacks it."""
    params = {"query": selector, "start": since, "end": time.time()}
    response = httpx.get(f"{prometheus_url}/api/v1/query_exemplars", params=params, timeout=10)
    assert response.status_code == 200, response.text
    return {
        exemplar["labels"][TRACE_ID_LABEL] for series in response.json()["data"] for exemplar in series["exemplars"]
    }


@pytest.mark.parametrize("histogram, failing_labels", HISTOGRAMS)
def test_latency_exemplars_name_traces_jaeger_holds(traffic, stack, histogram, failing_labels):
    """The histogram's exemplars of the demo worker reach Prometheus through the collector, each with the trace id
    label Grafana links to Jaeger, the failing call's trace among those of its series; every one is a trace Jaeger
    returns."""
    demo, failing_trace_id, began = traffic
    worker = f'job="{demo.worker_service}"'
    failing = ", ".join([worker, *(f'{label}="{value}"' for label, value in failing_labels.items())])

    wait_until(
        lambda: failing_trace_id in _exemplar_trace_ids(stack.prometheus_url, f"{histogram}{{{failing}}}", began),
        60,
        interval=1,
        what=f"the failing call's trace among the exemplars of {histogram}{{{failing}}}",
    )
    trace_ids = _exemplar_trace_ids(stack.prometheus_url, f"{histogram}{{{worker}}}", began)
    assert len(trace_ids) >= 2, trace_ids  # the good calls' exemplars too, not only the failing one
    for trace_id in sorted(trace_ids):
        found = wait_until(
            lambda trace_id=trace_id: jaeger_trace(stack.jaeger_url, trace_id), 30, interval=1, what=trace_id
        )
        assert {span["traceID"] for span in found["spans"]} == {trace_id}

"""The collector distributions and the shared configs: built binaries validate them, each manifest matches its
configs."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from otel_monitor.instrument.metrics import Outcome
from tools.devstack.stack import REPO_ROOT, _binary
from tools.devstack.tier import (
    AGENT_CONFIG,
    AGENT_MANIFEST,
    GATEWAY_CONFIG,
    GATEWAY_MANIFEST,
    agent_collector_binary,
    gateway_collector_binary,
)

COLLECTOR_CONFIG = REPO_ROOT / "otel-collector.yaml"
MANIFEST = REPO_ROOT / "collector" / "builder-config.yaml"
# Built into the single collector for a config of its own: the log store's exporter (OTLP over HTTP).
BUILT_FOR_THE_LOG_STORE = {"otlphttpexporter"}
# Built into the agent beside the load balancer, which sends to each gateway through an OTLP exporter of its own.
BUILT_FOR_THE_LOAD_BALANCER = {"otlpexporter"}
# Each distribution, the config it runs and what it builds beyond it: the single collector (`make demo`), and the
# tier's agent (one per host) and gateway (run N times).
DISTRIBUTIONS = [
    (MANIFEST, COLLECTOR_CONFIG, BUILT_FOR_THE_LOG_STORE),
    (AGENT_MANIFEST, AGENT_CONFIG, BUILT_FOR_THE_LOAD_BALANCER),
    (GATEWAY_MANIFEST, GATEWAY_CONFIG, set()),
]
# What `validate` needs in the environment: the agent's gateways have no default.
VALIDATE_ENV = {"AGENT_GATEWAY_ENDPOINTS": "[127.0.0.1:14317, 127.0.0.1:24317]"}
KINDS = {
    "receivers": "receiver",
    "processors": "processor",
    "exporters": "exporter",
    "connectors": "connector",
    "extensions": "extension",
}


@pytest.fixture(scope="module")
def collector_bin():
    return _binary("OTEL_MONITOR_COLLECTOR_BIN", "build-collector.sh")


BUILT_BINARIES = {
    "collector": lambda: _binary("OTEL_MONITOR_COLLECTOR_BIN", "build-collector.sh"),
    "agent": agent_collector_binary,
    "gateway": gateway_collector_binary,
    "jaeger": lambda: _binary("OTEL_MONITOR_JAEGER_BIN", "build-jaeger.sh"),
}


@pytest.mark.parametrize(
    "binary,config",
    [
        ("collector", COLLECTOR_CONFIG),
        ("agent", AGENT_CONFIG),
        ("gateway", GATEWAY_CONFIG),
        ("jaeger", REPO_ROOT / "config" / "jaeger.yaml"),
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_built_binaries_validate_the_shared_configs(binary, config):
    """`validate` of each built collector (and of Jaeger, itself a collector build) accepts the configs it runs."""
    path = BUILT_BINARIES[binary]()
    result = subprocess.run(
        [path, "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **VALIDATE_ENV},
    )
    assert result.returncode == 0, result.stderr


def test_validate_rejects_a_component_the_distribution_lacks(collector_bin, tmp_path):
    """A config using a component that is not built in fails validation, naming it."""
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    config["receivers"]["zipkin"] = {}
    config["service"]["pipelines"]["traces"]["receivers"].append("zipkin")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [collector_bin, "validate", "--config", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "zipkin" in result.stderr


def _module_name(kind: str, component_type: str) -> str:
    # Since v0.144 the OTLP gRPC exporter's type is otlp_grpc; it lives in the otlpexporter module.
    base = {"otlp_grpc": "otlp", "otlp_http": "otlphttp"}.get(component_type, component_type)
    return base.replace("_", "") + KINDS[kind]


def _used_modules(config_path) -> set[str]:
    config = yaml.safe_load(config_path.read_text())
    return {_module_name(kind, name.split("/")[0]) for kind in KINDS for name in config.get(kind) or {}}


@pytest.mark.parametrize("manifest,config,extra", DISTRIBUTIONS, ids=["single", "agent", "gateway"])
def test_manifest_holds_exactly_the_components_the_config_uses(manifest, config, extra):
    """Each builder manifest builds each component type of the config its binary runs (and what the log store and
    the load balancer name), and nothing else."""
    built_by = yaml.safe_load(manifest.read_text())
    used = _used_modules(config) | extra
    built = {entry["gomod"].split()[0].rsplit("/", 1)[-1] for kind in KINDS for entry in built_by.get(kind) or []}
    assert used == built


def _pipelines(config_path) -> dict:
    return yaml.safe_load(config_path.read_text())["service"]["pipelines"]


def test_gateway_computes_span_metrics_from_every_span_before_sampling():
    """The gateway feeds span metrics from a traces pipeline without tail sampling; only Jaeger's is sampled."""
    pipelines = _pipelines(GATEWAY_CONFIG)
    into_spanmetrics = [p for p in pipelines.values() if "span_metrics" in p.get("exporters", [])]
    into_jaeger = [p for p in pipelines.values() if "otlp_grpc/jaeger" in p.get("exporters", [])]
    assert into_spanmetrics and all("tail_sampling" not in p["processors"] for p in into_spanmetrics)
    assert into_jaeger and all("tail_sampling" in p["processors"] for p in into_jaeger)
    assert all(p["receivers"] == ["otlp"] for p in into_spanmetrics + into_jaeger)  # the same spans, both ways


def test_gateway_keeps_every_failed_provider_call():
    """The failed-call policy keeps each external_api.outcome that is not a success, as the instrumentation
    names them."""
    policies = yaml.safe_load(GATEWAY_CONFIG.read_text())["processors"]["tail_sampling"]["policies"]
    (failed_calls,) = [p for p in policies if p["name"] == "failed-provider-calls"]
    assert failed_calls["string_attribute"]["key"] == "external_api.outcome"
    assert set(failed_calls["string_attribute"]["values"]) == set(Outcome.ALL) - {Outcome.SUCCESS}


def test_agent_routes_spans_by_trace_and_every_signal_to_the_gateways():
    """The agent's traces go through the trace-ID load balancer; its metrics and logs through one by resource."""
    config = yaml.safe_load(AGENT_CONFIG.read_text())
    pipelines = config["service"]["pipelines"]
    assert config["exporters"][pipelines["traces"]["exporters"][0]]["routing_key"] == "traceID"
    for signal in ("metrics", "metrics/host", "logs"):
        (exporter,) = pipelines[signal]["exporters"]
        assert exporter.startswith("load_balancing/") and config["exporters"][exporter]["routing_key"] == "resource"
    assert all(pipeline["processors"][0] == "memory_limiter" for pipeline in pipelines.values())


def test_agent_names_its_host_on_its_host_metrics_only():
    """The host metrics, alone in their pipeline, get the host's resource (upserted); the backend's OTLP metrics
    keep their own service and instance."""
    config = yaml.safe_load(AGENT_CONFIG.read_text())
    pipelines = config["service"]["pipelines"]
    (host_pipeline,) = [pipeline for pipeline in pipelines.values() if "host_metrics" in pipeline["receivers"]]
    assert host_pipeline["receivers"] == ["host_metrics"]
    resource_processors = [name for name in host_pipeline["processors"] if name.split("/")[0] == "resource"]
    assert resource_processors == ["resource/host"]
    # service.instance.id and service.name become the series' `instance` and `job` at the gateways' Prometheus
    # exporter, host.name a label of target_info.
    actions = config["processors"]["resource/host"]["attributes"]
    values = {action["key"]: action["value"] for action in actions}
    assert set(values) == {"host.name", "service.instance.id", "service.name"}
    assert values["host.name"] == values["service.instance.id"] == "${env:AGENT_HOST_NAME:-${env:HOSTNAME}}"
    assert {action["action"] for action in actions} == {"upsert"}
    others = [pipeline for pipeline in pipelines.values() if pipeline is not host_pipeline]
    assert all(name.split("/")[0] != "resource" for pipeline in others for name in pipeline["processors"])


@pytest.mark.parametrize("manifest", [MANIFEST, AGENT_MANIFEST, GATEWAY_MANIFEST], ids=lambda value: value.name)
def test_collector_modules_are_on_one_release_line(manifest):
    """Core components at v0.N, confmap providers at v1.(N-94), contrib at v0.N.x: the pins that build together."""
    built_by = yaml.safe_load(manifest.read_text())
    core = built_by["dist"]["version"]
    minor = int(core.split(".")[1])
    for kind in KINDS:
        for entry in built_by.get(kind) or []:
            module, version = entry["gomod"].split()
            assert version.startswith(f"v0.{minor}."), entry
    for entry in built_by["providers"]:
        assert entry["gomod"].split()[1] == f"v1.{minor - 94}.0", entry

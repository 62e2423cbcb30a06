"""The collector distribution and the shared configs: built binaries validate them, the manifest matches the config."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tools.devstack.stack import REPO_ROOT, _binary

COLLECTOR_CONFIG = REPO_ROOT / "otel-collector.yaml"
MANIFEST = REPO_ROOT / "collector" / "builder-config.yaml"
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


@pytest.mark.parametrize(
    "binary,config",
    [
        ("collector", COLLECTOR_CONFIG),
        ("jaeger", REPO_ROOT / "config" / "jaeger.yaml"),
    ],
)
def test_built_binaries_validate_the_shared_configs(binary, config, collector_bin):
    """`validate` of the built collector (and of Jaeger, itself a collector build) accepts the shared config."""
    path = collector_bin if binary == "collector" else _binary("OTEL_MONITOR_JAEGER_BIN", "build-jaeger.sh")
    result = subprocess.run([path, "validate", "--config", str(config)], capture_output=True, text=True, timeout=60)
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


def test_manifest_holds_exactly_the_components_the_config_uses():
    """The builder manifest builds each component type of otel-collector.yaml, and nothing else."""
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    manifest = yaml.safe_load(MANIFEST.read_text())
    used = {_module_name(kind, name.split("/")[0]) for kind in KINDS for name in config.get(kind) or {}}
    built = {entry["gomod"].split()[0].rsplit("/", 1)[-1] for kind in KINDS for entry in manifest.get(kind) or []}
    assert used == built


def test_collector_modules_are_on_one_release_line():
    """Core components at v0.N, confmap providers at v1.(N-94), contrib at v0.N.x: the pins that build together."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    core = manifest["dist"]["version"]
    minor = int(core.split(".")[1])
    for kind in KINDS:
        for entry in manifest.get(kind) or []:
            module, version = entry["gomod"].split()
            assert version.startswith(f"v0.{minor}."), entry
    for entry in manifest["providers"]:
        assert entry["gomod"].split()[1] == f"v1.{minor - 94}.0", entry

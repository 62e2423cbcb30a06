"""The deployment files agree with the repo: docker-compose.yml, Grafana provisioning and the dashboards' PromQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml

from examples.demo_backend.launcher import OUTSIDE_PROBE_PATHS
from otel_monitor.instrument.metrics import PromNames
from otel_monitor.monitor.alerting.metrics import AlertingPromNames
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.monitor.health.metrics import HealthPromNames
from otel_monitor.monitor.quota.metrics import QuotaPromNames
from tools.devstack.stack import BLACKBOX_ADDRESS_LABEL, BLACKBOX_JOB, REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DASHBOARD_DIR = REPO_ROOT / "dashboards"
GRAFANA_DIR = REPO_ROOT / "config" / "grafana"
RULES_FILE = REPO_ROOT / "config" / "alert-rules.yaml"

# The files the local stack, the tests and compose share: service -> the host path compose mounts.
SHARED_CONFIGS = {
    "otel-collector": "./otel-collector.yaml",
    "jaeger": "./config/jaeger.yaml",
    "prometheus": "./config/prometheus.yml",
    "blackbox-exporter": "./config/blackbox.yml",
}
# Variables a service's own binary reads that its config file does not mention.
READ_BY_THE_BINARY = {"otel-collector": set(), "jaeger": {"OTEL_TRACES_EXPORTER"}}
DEMO_SERVICES = ("video-api", "video-worker")

_ENV_REFERENCE = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-(?P<value>[^}]*))?\}")
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")

# Grafana's variables, replaced by values Prometheus accepts, before a query is sent to it.
GRAFANA_VARIABLES = {
    "service": "gemini",
    "host": "api-1",
    "service_name": "video-api",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__tags": 'service_name="video-api"',
}
_GRAFANA_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<plain>\w+))")


# -- reading the files ---------------------------------------------------------------------------------------
def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _service(name: str) -> dict:
    return _compose()["services"][name]


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` spelling
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def _bind_sources(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount from the repo (sources starting with ./)."""
    mounts = []
    for volume in service.get("volumes", ()):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            source, _, rest = volume.partition(":")
            target = rest.split(":", 1)[0]
        if source.startswith("./"):
            mounts.append((source, target))
    return mounts


def _host_paths() -> list[tuple[str, str]]:
    """(service, path relative to the repo) of everything compose reads from the checkout."""
    found = []
    for name, service in _compose()["services"].items():
        found += [(name, source) for source, _ in _bind_sources(service)]
        build = service.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if build:
            context = build.get("context", ".")
            found.append((name, context))
            if "dockerfile" in build:
                found.append((name, str(Path(context) / build["dockerfile"])))
        env_files = service.get("env_file", ())
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            found.append((name, env_file if isinstance(env_file, str) else env_file["path"]))
    return found


def _env_references(config: str) -> dict[str, str | None]:
    """NAME -> default (None when it has none) of every ${env:NAME} in a shared config file."""
    return {m["name"]: m["value"] for m in _ENV_REFERENCE.finditer((REPO_ROOT / config).read_text())}


def _dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def _panels(panels: list[dict]) -> list[dict]:
    flat = []
    for panel in panels:
        flat.append(panel)
        flat += _panels(panel.get("panels", []))  # the panels of collapsed rows
    return flat


def _promql_cases() -> list:
    """Every PromQL expression of the dashboards and of the provisioned data sources, as pytest params."""
    cases = []
    for name, board in _dashboards().items():
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", ()):
                if target.get("expr") and target.get("datasource", panel["datasource"])["type"] == "prometheus":
                    case_id = f"{name}#{panel['id']} {panel['title']} {target['refId']}"
                    cases.append(pytest.param(target["expr"], id=case_id))
    for source in _grafana_file("datasources.yml")["datasources"]:
        for query in source.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", ()):
            # Grafana expands $NAME in provisioning files from the environment; $$ is a literal $.
            expr = query["query"].replace("$$", "$")
            cases.append(pytest.param(expr, id=f"datasource {source['uid']} {query['name']}"))
    return cases


def _variable_metrics() -> list:
    """The metric of every `label_values(metric, label)` template variable, as pytest params."""
    cases = []
    for name, board in _dashboards().items():
        for variable in board.get("templating", {}).get("list", ()):
            query = variable.get("query")
            query = query.get("query", "") if isinstance(query, dict) else query or ""
            match = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*\w+\s*\)\s*", query)
            assert match, f"{name}: variable {variable['name']} is not label_values(metric, label): {query!r}"
            cases.append(pytest.param(match[1], id=f"{name} ${variable['name']}"))
    return cases


def _grafana_file(name: str) -> dict:
    return yaml.safe_load((GRAFANA_DIR / name).read_text())


# -- PromQL ----------------------------------------------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels, keywords or durations)."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        is_call = text[match.end() :].lstrip().startswith("(")
        if not is_call and match[0].lower() not in _KEYWORDS:
            names.add(match[0])
    return names


def _allowed(name: str) -> bool:
    base = {
        value
        for names in (PromNames, HealthPromNames, QuotaPromNames, AlertingPromNames)
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str)
    }
    known = base | {f"{value}{suffix}" for value in base for suffix in ("_bucket", "_count", "_sum")}
    return name in known or name.startswith(("traces_span_metrics_", "otelcol_"))


def substitute_grafana_variables(expr: str) -> str:
    """The expression with Grafana's $variables replaced; an unknown variable is an error."""

    def value(match: re.Match) -> str:
        name = match["braced"] or match["plain"]
        if name not in GRAFANA_VARIABLES:
            raise KeyError(f"no test value for Grafana variable ${name}; add one to GRAFANA_VARIABLES")
        return GRAFANA_VARIABLES[name]

    return _GRAFANA_VARIABLE.sub(value, expr)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (service, le) (rate(external_api_call_duration_seconds_bucket{service=~"$service"}[5m]))',
            {"external_api_call_duration_seconds_bucket"},
        ),
        ('a{x="rate(b)"} / on (x) group_left (y) c offset 1d', {"a", "c"}),
        ("histogram_quantile(0.9, sum(rate(m_bucket[1m])) by (le)) > 1e3", {"m_bucket"}),
        ("sum(increase(x[$__range]) or vector(0))", {"x"}),
        ("(max_over_time(x[$__range]) - x offset $__range) or max_over_time(x[${__range}])", {"x"}),
    ],
)
def test_metric_names_finds_selected_series_only(expr, names):
    """The PromQL name extractor returns the selected series, never functions, labels, strings or durations."""
    assert metric_names(expr) == names


# -- docker-compose.yml ----------------------------------------------------------------------------------------
def test_compose_parses_with_the_expected_services():
    """docker-compose.yml is YAML with the whole topology, the monitor service included."""
    services = _compose()["services"]
    assert set(services) == {
        "otel-collector",
        "jaeger-data-owner",
        "jaeger",
        "victorialogs",
        "prometheus",
        "blackbox-exporter",
        "grafana",
        "redis",
        "postgres",
        "fake-providers",
        "video-worker",
        "video-api",
        "monitor",
    }


def test_compose_monitor_config_loads_with_the_compose_environment(monkeypatch):
    """The monitor's config file, with the environment compose gives it, is valid and listens beyond loopback."""
    from otel_monitor.monitor.config import MonitorConfig
    from otel_monitor.monitor.config_file import load_config_file

    monitor = _compose()["services"]["monitor"]
    config_path = monitor["command"][-1].replace("/app/", "")
    for name, value in monitor["environment"].items():
        monkeypatch.setenv(name, str(value).replace("${POSTGRES_PASSWORD:-otel-monitor}", "otel-monitor"))
    config = load_config_file(REPO_ROOT / config_path, MonitorConfig)
    assert config.server.host == "0.0.0.0"
    assert config.health.redis_url == "redis://redis:6379/0"
    assert config.quota.store_url.startswith("postgresql+psycopg://postgres:otel-monitor@postgres:5432/")


@pytest.mark.parametrize(("service", "path"), _host_paths(), ids=lambda value: str(value))
def test_compose_host_path_exists(service, path):
    """Every path compose reads from the checkout (bind mounts, build contexts, Dockerfiles, env files) exists."""
    assert (REPO_ROOT / path).exists(), f"{service} uses {path}, which is not in the repo"


@pytest.mark.parametrize(("service", "config"), SHARED_CONFIGS.items())
def test_compose_mounts_the_shared_config(service, config):
    """Collector, Jaeger and Prometheus mount the shared config file and start with it: never a copy."""
    definition = _service(service)
    targets = [target for source, target in _bind_sources(definition) if source == config]
    assert len(targets) == 1, f"{service} must mount {config} once; mounts {_bind_sources(definition)}"
    assert all(
        Path(source).suffix not in (".yaml", ".yml") or source == config for source, _ in _bind_sources(definition)
    ), f"{service} mounts another config file"
    command = definition.get("command", [])
    command = " ".join(command) if isinstance(command, list) else command
    assert targets[0] in command, f"{service} mounts {config} at {targets[0]} but its command does not load it"


@pytest.mark.parametrize(("service", "config"), [(s, c) for s, c in SHARED_CONFIGS.items() if s in READ_BY_THE_BINARY])
def test_compose_env_is_referenced_by_the_shared_config(service, config):
    """Every variable compose sets for the collector and Jaeger is one their shared config reads."""
    unused = set(_environment(_service(service))) - set(_env_references(config)) - READ_BY_THE_BINARY[service]
    assert not unused, f"{service} sets {sorted(unused)}, which {config} never reads"


@pytest.mark.parametrize(("service", "config"), [(s, c) for s, c in SHARED_CONFIGS.items() if s in READ_BY_THE_BINARY])
def test_shared_config_env_without_default_is_set_by_compose(service, config):
    """Every ${env:NAME} without a default in a shared config is set for that service in compose."""
    required = {name for name, default in _env_references(config).items() if default is None}
    missing = required - set(_environment(_service(service)))
    assert not missing, f"{config} needs {sorted(missing)}, which compose does not set for {service}"


@pytest.mark.parametrize(("service", "config"), [(s, c) for s, c in SHARED_CONFIGS.items() if s in READ_BY_THE_BINARY])
def test_compose_moves_every_loopback_default_off_loopback(service, config):
    """An address that defaults to loopback is set by compose to one other containers can reach."""
    env = _environment(_service(service))
    for name, default in _env_references(config).items():
        if default and default.startswith(_LOOPBACK):
            assert name in env, f"{service}: {name} would stay on {default}, unreachable from other containers"
            assert not env[name].startswith(_LOOPBACK), f"{service}: {name}={env[name]} is loopback"


def _scrape_jobs() -> dict[str, dict]:
    config = yaml.safe_load((REPO_ROOT / "config/prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def _compose_target_groups(job: str) -> list[dict]:
    return [
        group
        for sd in _scrape_jobs()[job]["file_sd_configs"]
        for file in sd["files"]
        for group in json.loads((REPO_ROOT / "config/compose" / file).read_text())
    ]


@pytest.mark.parametrize("job", [name for name in _scrape_jobs() if name != BLACKBOX_JOB])
def test_compose_prometheus_targets_name_the_collectors_ports(job):
    """Each scrape job's target file exists for compose and names the collector at the port compose gives it."""
    config = yaml.safe_load((REPO_ROOT / "config/prometheus.yml").read_text())
    (scrape,) = [s for s in config["scrape_configs"] if s["job_name"] == job]
    mount = dict(_bind_sources(_service("prometheus")))["./config/compose/targets"]
    assert mount == "/etc/prometheus/targets", "prometheus.yml reads targets/ beside /etc/prometheus/prometheus.yml"
    env = _environment(_service("otel-collector"))
    listening = {env["COLLECTOR_PROMETHEUS_ENDPOINT"].rsplit(":", 1)[1], env["COLLECTOR_TELEMETRY_PORT"]}
    for sd in scrape["file_sd_configs"]:
        for file in sd["files"]:
            groups = json.loads((REPO_ROOT / "config/compose" / file).read_text())
            for target in (t for group in groups for t in group["targets"]):
                host, port = target.rsplit(":", 1)
                assert host == "otel-collector" and port in listening, f"{job}: {target} is not the collector"


@pytest.mark.parametrize("service", DEMO_SERVICES)
def test_compose_demo_env_loads_into_the_settings(service, monkeypatch):
    """The OTEL_MONITOR_* and DEMO_* variables compose sets are fields of the settings, with valid values."""
    from examples.demo_backend.config import DemoSettings
    from otel_monitor.instrument.settings import TelemetrySettings

    env = _environment(_service(service))
    for settings in (TelemetrySettings, DemoSettings):
        prefix = settings.model_config["env_prefix"]
        names = {name[len(prefix) :].lower() for name in env if name.startswith(prefix)}
        assert names <= set(settings.model_fields), f"{service}: unknown {sorted(names - set(settings.model_fields))}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert TelemetrySettings().service_name == service
    assert DemoSettings().redis_url == TelemetrySettings().redis_url


def test_compose_probes_the_api_through_the_blackbox_exporter():
    """The probe job of prometheus.yml asks /probe with module http_2xx of the blackbox config, at the exporter its
    compose target file names (the blackbox-exporter service on its listening port), for URLs of the API service."""
    job = _scrape_jobs()[BLACKBOX_JOB]
    modules = yaml.safe_load((REPO_ROOT / "config/blackbox.yml").read_text())["modules"]
    assert job["metrics_path"] == "/probe" and all(module in modules for module in job["params"]["module"])
    relabel = {rule["target_label"]: rule["source_labels"] for rule in job["relabel_configs"]}
    assert relabel == {
        "__param_target": ["__address__"],
        "instance": ["__param_target"],
        "__address__": [BLACKBOX_ADDRESS_LABEL],
    }
    (api_port,) = [arg.split("=", 1)[1] for arg in _service("video-api")["command"] if arg.startswith("--port=")]
    (group,) = _compose_target_groups(BLACKBOX_JOB)
    assert group["labels"][BLACKBOX_ADDRESS_LABEL] == "blackbox-exporter:9115"  # the image's default listen port
    assert "blackbox-exporter" in _service("prometheus")["depends_on"]
    assert group["targets"] == [f"http://video-api:{api_port}{path}" for path in OUTSIDE_PROBE_PATHS]


# -- Grafana provisioning and dashboards ------------------------------------------------------------------------
def _dashboard_datasource_uids(board: dict) -> set[str]:
    refs = [panel.get("datasource") for panel in _panels(board["panels"])]
    refs += [target.get("datasource") for panel in _panels(board["panels"]) for target in panel.get("targets", ())]
    refs += [variable.get("datasource") for variable in board.get("templating", {}).get("list", ())]
    return {ref["uid"] for ref in refs if isinstance(ref, dict)}


def test_datasources_provision_the_uids_the_dashboards_use():
    """datasources.yml provisions Prometheus and Jaeger by the uids every dashboard and exemplar link use."""
    sources = {source["uid"]: source for source in _grafana_file("datasources.yml")["datasources"]}
    assert sources["prometheus"]["type"] == "prometheus" and sources["jaeger"]["type"] == "jaeger"
    # An exemplar's trace_id label opens its trace in Jaeger (tests/integration/test_exemplars.py: they reach it).
    links = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert [(link["name"], sources[link["datasourceUid"]]["type"]) for link in links] == [("trace_id", "jaeger")]
    assert sources["jaeger"]["jsonData"]["tracesToMetrics"]["datasourceUid"] in sources
    # A log line's trace_id field opens its trace in Jaeger (the logs panels' data source).
    fields = sources["victorialogs"]["jsonData"]["derivedFields"]
    assert [(f["matcherType"], f["matcherRegex"], sources[f["datasourceUid"]]["type"]) for f in fields] == [
        ("label", "trace_id", "jaeger")
    ]
    for name, board in _dashboards().items():
        assert _dashboard_datasource_uids(board) <= set(sources), f"{name} uses an unprovisioned data source"


def test_compose_grafana_installs_the_plugin_of_every_provisioned_data_source():
    """A data source type Grafana does not ship (the VictoriaLogs plugin) is installed by compose's Grafana, and
    the log store's data source names compose's VictoriaLogs."""
    built_in = {"prometheus", "jaeger"}
    sources = _grafana_file("datasources.yml")["datasources"]
    installed = set(_environment(_service("grafana"))["GF_INSTALL_PLUGINS"].split(","))
    assert {source["type"] for source in sources} - built_in <= installed
    (logs,) = [source for source in sources if source["uid"] == "victorialogs"]
    port = _service("victorialogs")["ports"][0].split(":")[-1]
    assert logs["url"] == f"http://victorialogs:{port}"


def test_dashboard_provider_loads_the_dashboards_compose_mounts():
    """dashboards.yml loads the folder compose mounts ./dashboards at; both provisioning files are mounted."""
    (provider,) = _grafana_file("dashboards.yml")["providers"]
    mounts = dict(_bind_sources(_service("grafana")))
    assert provider["type"] == "file" and provider["options"]["path"] == mounts["./dashboards"]
    assert mounts["./config/grafana/datasources.yml"].startswith("/etc/grafana/provisioning/datasources/")
    assert mounts["./config/grafana/dashboards.yml"].startswith("/etc/grafana/provisioning/dashboards/")


@pytest.mark.parametrize("name", sorted(_dashboards()))
def test_dashboard_is_a_grafana_11_model(name):
    """A dashboard is a schemaVersion 39 model with a uid, unique panel ids and a query on every panel."""
    board = _dashboards()[name]
    assert board["schemaVersion"] == 39 and board["uid"] and board["title"]
    panels = _panels(board["panels"])
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel.get("targets"), f"{name}: panel {panel['title']!r} has no query"


def test_dashboard_uids_are_unique():
    """No two dashboards share a uid (Grafana would load only one of them)."""
    uids = [board["uid"] for board in _dashboards().values()]
    assert len(uids) == len(set(uids)) == len(list(DASHBOARD_DIR.glob("*.json")))


_HOST_SERIES = {PromNames.HOST_CPU_USAGE, PromNames.HOST_MEMORY_USAGE, PromNames.HOST_DISK_FREE}
_COMPARED_NUMBER = re.compile(r"[<>]=?\s*(-?[0-9]*\.?[0-9]+)")


def _threshold_panels() -> list[tuple[str, set[str], set[float]]]:
    """(dashboard/panel, series selected, threshold step values) of every panel that draws thresholds."""
    found = []
    for name, board in sorted(_dashboards().items()):
        for panel in _panels(board["panels"]):
            steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
            values = {float(step["value"]) for step in steps if step.get("value") is not None}
            if values and panel.get("targets"):
                names = set().union(*(metric_names(target["expr"]) for target in panel["targets"]))
                found.append((f"{name}: {panel['title']}", names, values))
    return found


def _system_series() -> set[str]:
    """The monitor's health and quota gauges and the backend hosts' CPU, memory and disk."""
    return _HOST_SERIES | {
        value
        for names in (HealthPromNames, QuotaPromNames)
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str)
    }


def _rule_thresholds() -> dict[str, set[float]]:
    """{system series: the numbers the shipped PromQL rules compare it with} (host, health and quota gauges: one
    number per threshold; the providers' ratios are built from several series and are not compared here)."""
    thresholds: dict[str, set[float]] = {}
    for rule in load_rules(RULES_FILE, promtool=None):  # the loader fills in config/thresholds.yaml's numbers
        names = metric_names(rule.expr) if rule.source == "promql" else set()
        if len(names) == 1 and names <= _system_series():
            thresholds.setdefault(names.pop(), set()).update(float(v) for v in _COMPARED_NUMBER.findall(rule.expr))
    return thresholds


@pytest.mark.parametrize("panel, names, values", _threshold_panels(), ids=[case[0] for case in _threshold_panels()])
def test_dashboard_thresholds_include_the_rules_thresholds(panel, names, values):
    """A panel drawing a system series that alert rules compare with numbers shows those numbers as threshold
    steps, so the dashboard and the alerts cannot disagree."""
    rules = _rule_thresholds()
    for name in names & set(rules):
        assert rules[name] <= values, f"{panel}: {name} alerts at {sorted(rules[name])}, drawn at {sorted(values)}"


def test_system_dashboard_draws_every_system_series():
    """Every system series the rules alert on (the hosts' CPU, memory and disk, queue, DB connections, quota) has a
    panel."""
    drawn = set().union(*(names for _, names, _ in _threshold_panels()))
    assert len(_rule_thresholds()) >= 6 and _HOST_SERIES | set(_rule_thresholds()) <= drawn


@pytest.mark.parametrize("expr", _promql_cases())
def test_promql_uses_only_known_metrics(expr):
    """Each query selects only series the code names (PromNames, HealthPromNames, QuotaPromNames,
    AlertingPromNames, or their histogram parts), span metrics or otelcol_* series."""
    names = metric_names(expr)
    assert names, "no metric name found in the expression"
    unknown = sorted(name for name in names if not _allowed(name))
    assert not unknown, f"unknown metric(s) {unknown}"


@pytest.mark.parametrize("metric", _variable_metrics())
def test_template_variable_uses_a_known_metric(metric):
    """Each template variable lists label values of a known metric."""
    assert _allowed(metric), f"unknown metric {metric}"


@pytest.mark.stack
@pytest.mark.parametrize("expr", _promql_cases())
def test_promql_parses_in_prometheus(stack, expr):
    """Each query, Grafana variables filled in, is accepted by the real Prometheus (a parse error is HTTP 400)."""
    query = substitute_grafana_variables(expr)
    response = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query}, timeout=10)
    assert response.status_code == 200, f"{query}\n-> {response.text}"
    assert response.json()["status"] == "success"

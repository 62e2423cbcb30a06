"""The otel-monitor stack on loopback: collector, Jaeger, VictoriaLogs, Prometheus, blackbox exporter, Redis,
PostgreSQL, each on its own port."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from otel_monitor.monitor.status.provider_metrics import OUTSIDE_PROBE_JOB
from tools.devstack.processes import ManagedProcess, ProcessGroup, free_ports, http_ok, tcp_open

__all__ = ["DevStack", "StackPorts", "REPO_ROOT", "server_workdir"]

REPO_ROOT = Path(__file__).resolve().parents[2]
# The scrape job of config/prometheus.yml that probes through the blackbox exporter, and the target label naming
# the exporter (each target file names its own: loopback here, the compose service in compose).
BLACKBOX_JOB = OUTSIDE_PROBE_JOB
BLACKBOX_ADDRESS_LABEL = "__blackbox_exporter"
# How long VictoriaLogs keeps log lines (its -retentionPeriod: a number and h, d, w or y); compose reads the same
# variable.
VICTORIALOGS_RETENTION = os.environ.get("VICTORIALOGS_RETENTION", "7d")
POSTGRES_BIN = Path(os.environ.get("OTEL_MONITOR_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class StackPorts:
    """Every port of the stack; ``free()`` picks unused ones, the defaults are those of `make demo`."""

    collector_otlp_grpc: int = 4317
    collector_otlp_http: int = 4318
    collector_health: int = 13133
    collector_prometheus: int = 8889
    collector_telemetry: int = 8888
    jaeger_otlp_grpc: int = 14317
    jaeger_otlp_http: int = 14318
    jaeger_query_http: int = 16686
    jaeger_query_grpc: int = 16685
    jaeger_health: int = 13134
    victorialogs: int = 9428
    prometheus: int = 9090
    blackbox: int = 9115
    redis: int = 6379
    postgres: int = 5432

    @classmethod
    def free(cls) -> StackPorts:
        names = [f.name for f in fields(cls)]
        return cls(**dict(zip(names, free_ports(len(names)), strict=False)))


def server_workdir(prefix: str) -> Path:
    """A new directory for servers. Not one of mode 0700 (mkdtemp's, pytest's tmp dirs): PostgreSQL runs as its own
    user and must reach its data dir."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


def _binary(env_var: str, script: str, *args: str) -> str:
    """A built binary: from the environment (set by the Makefile) or by running its cached build script."""
    path = os.environ.get(env_var)
    if path and Path(path).is_file():
        return path
    result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / script), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed (set {env_var} to a built binary):\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


@dataclass
class DevStack(ProcessGroup):
    """Starts the stack's servers in ``workdir`` and stops them; tests, `make demo` and benches share it."""

    workdir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    scrape_interval: str = "5s"
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs = self.workdir / "logs"

    # -- addresses -----------------------------------------------------------------------------------
    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.collector_otlp_http}"

    @property
    def jaeger_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.jaeger_query_http}"

    @property
    def victorialogs_url(self) -> str:
        """VictoriaLogs' HTTP address: its OTLP intake, query API and web UI."""
        return f"http://127.0.0.1:{self.ports.victorialogs}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    @property
    def postgres_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.ports.postgres}/postgres"

    # -- components ----------------------------------------------------------------------------------
    def collector(self) -> ManagedProcess:
        p = self.ports
        env = {
            "COLLECTOR_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.collector_otlp_grpc}",
            "COLLECTOR_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p.collector_otlp_http}",
            "COLLECTOR_HEALTH_ENDPOINT": f"127.0.0.1:{p.collector_health}",
            "COLLECTOR_PROMETHEUS_ENDPOINT": f"127.0.0.1:{p.collector_prometheus}",
            "COLLECTOR_TELEMETRY_HOST": "127.0.0.1",
            "COLLECTOR_TELEMETRY_PORT": str(p.collector_telemetry),
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_otlp_grpc}",
            "VICTORIALOGS_ENDPOINT": f"127.0.0.1:{p.victorialogs}",
        }
        binary = _binary("OTEL_MONITOR_COLLECTOR_BIN", "build-collector.sh")
        return ManagedProcess(
            "otel-collector",
            [binary, "--config", str(REPO_ROOT / "otel-collector.yaml")],
            self.logs / "otel-collector.log",
            env=env,
            ready=http_ok(f"http://127.0.0.1:{p.collector_health}/"),
        )

    def jaeger(self) -> ManagedProcess:
        p = self.ports
        env = {
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_otlp_grpc}",
            "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p.jaeger_otlp_http}",
            "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{p.jaeger_query_http}",
            "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_query_grpc}",
            "JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{p.jaeger_health}",
            # Badger's keys and values: kept across restarts of this stack's Jaeger, removed with its workdir.
            "JAEGER_BADGER_DIR": str(self.workdir / "jaeger"),
            "OTEL_TRACES_EXPORTER": "none",  # Jaeger must not trace itself into the collector
        }
        binary = _binary("OTEL_MONITOR_JAEGER_BIN", "build-jaeger.sh")
        return ManagedProcess(
            "jaeger",
            [binary, "--config", str(REPO_ROOT / "config" / "jaeger.yaml")],
            self.logs / "jaeger.log",
            env=env,
            ready=http_ok(f"http://127.0.0.1:{p.jaeger_health}/status"),
        )

    def victorialogs(self) -> ManagedProcess:
        argv = [
            _binary("OTEL_MONITOR_VICTORIALOGS_BIN", "build-victorialogs.sh"),
            f"-storageDataPath={self.workdir / 'victorialogs'}",  # kept across its restarts, removed with the workdir
            f"-retentionPeriod={VICTORIALOGS_RETENTION}",
            f"-httpListenAddr=127.0.0.1:{self.ports.victorialogs}",
        ]
        return ManagedProcess(
            "victorialogs", argv, self.logs / "victorialogs.log", ready=http_ok(f"{self.victorialogs_url}/health")
        )

    def prometheus(self) -> ManagedProcess:
        home = self.workdir / "prometheus"
        (home / "targets").mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load((REPO_ROOT / "config" / "prometheus.yml").read_text())
        config["global"]["scrape_interval"] = self.scrape_interval
        for job in config["scrape_configs"]:
            for sd in job.get("file_sd_configs", ()):
                sd["refresh_interval"] = self.scrape_interval
        (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.scrape_targets("otel-collector", [self.ports.collector_prometheus])
        self.scrape_targets("otel-collector-internal", [self.ports.collector_telemetry])
        if not self._probe_targets_file.exists():
            self.probe_from_outside({})
        argv = [
            shutil.which("prometheus") or "/usr/bin/prometheus",
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
            "--web.enable-lifecycle",
            "--enable-feature=exemplar-storage",
        ]
        return ManagedProcess(
            "prometheus", argv, self.logs / "prometheus.log", ready=http_ok(f"{self.prometheus_url}/-/ready")
        )

    def scrape_targets(self, job: str, ports: Sequence[int]) -> None:
        """Makes Prometheus scrape ``job`` on these loopback ports (re-read within a scrape interval)."""
        path = self.workdir / "prometheus" / "targets" / f"{job}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}" for port in ports]}]))
        staged.replace(path)  # atomic: Prometheus never reads half a file

    @property
    def _probe_targets_file(self) -> Path:
        return self.workdir / "prometheus" / "targets" / f"{BLACKBOX_JOB}.json"

    def probe_from_outside(self, urls_by_service: Mapping[str, Sequence[str]]) -> None:
        """Makes the blackbox exporter probe each URL (as an outside client, module http_2xx) at every scrape, its
        ``probe_success`` labelled with the service; Prometheus re-reads the file within a scrape interval."""
        groups = [
            {"targets": list(urls), "labels": {"service": service, BLACKBOX_ADDRESS_LABEL: self.blackbox_address}}
            for service, urls in urls_by_service.items()
        ]
        path = self._probe_targets_file
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(groups))
        staged.replace(path)  # atomic: Prometheus never reads half a file

    @property
    def blackbox_address(self) -> str:
        return f"127.0.0.1:{self.ports.blackbox}"

    def blackbox(self) -> ManagedProcess:
        argv = [
            shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter",
            f"--config.file={REPO_ROOT / 'config' / 'blackbox.yml'}",
            f"--web.listen-address={self.blackbox_address}",
        ]
        return ManagedProcess(
            "blackbox", argv, self.logs / "blackbox.log", ready=http_ok(f"http://{self.blackbox_address}/-/healthy")
        )

    def redis(self) -> ManagedProcess:
        data = self.workdir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port",
            str(self.ports.redis),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
        ]
        return ManagedProcess("redis", argv, self.logs / "redis.log", ready=tcp_open(self.ports.redis))

    def postgres(self) -> ManagedProcess:
        data = self.workdir / "postgres"
        user = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            if user:
                shutil.chown(data, user, user)
                shutil.chown(self.workdir, user)
            initdb = ["runuser", "-u", user, "--"] if user else []
            _run_whole_group(
                [*initdb, str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            )
        argv = [
            str(POSTGRES_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.ports.postgres),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={data}",
            "-c",
            "fsync=off",
        ]
        return ManagedProcess(
            "postgres", argv, self.logs / "postgres.log", user=user, ready=tcp_open(self.ports.postgres)
        )

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self, *names: str) -> DevStack:
        """Starts the named components (all by default), back ends first."""
        order = ("jaeger", "victorialogs", "blackbox", "prometheus", "redis", "postgres", "collector")
        for name in order:
            if (not names or name in names) and name not in self.processes:
                self.processes[name] = getattr(self, name)().start()
        return self


def _run_whole_group(argv: list[str]) -> None:
    """Runs ``argv`` to completion in a process group of its own; interrupted (a stop signal during start-up), the
    whole group is killed, so no grandchild (initdb under runuser) outlives the stack. Raises CalledProcessError."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, argv, out, err)

"""The collector tier on loopback: one agent (collector/agent.yaml) in front of N gateways (collector/gateway.yaml),
the gateways exporting to a DevStack's Jaeger and VictoriaLogs and scraped by its Prometheus."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from tools.devstack.processes import ManagedProcess, ProcessGroup, free_ports, http_ok
from tools.devstack.stack import REPO_ROOT, DevStack, _binary

__all__ = [
    "CollectorTier",
    "CollectorPorts",
    "AGENT_CONFIG",
    "GATEWAY_CONFIG",
    "AGENT_MANIFEST",
    "GATEWAY_MANIFEST",
    "agent_collector_binary",
    "gateway_collector_binary",
]

AGENT_CONFIG = REPO_ROOT / "collector" / "agent.yaml"
GATEWAY_CONFIG = REPO_ROOT / "collector" / "gateway.yaml"
# The agent and the gateway are distributions of their own (each on a release line the Go module proxy serves whole).
AGENT_MANIFEST = REPO_ROOT / "collector" / "agent-builder-config.yaml"
GATEWAY_MANIFEST = REPO_ROOT / "collector" / "gateway-builder-config.yaml"


def agent_collector_binary() -> str:
    """The agent's collector: OTEL_MONITOR_COLLECTOR_AGENT_BIN (set by the Makefile) or its cached build."""
    return _binary("OTEL_MONITOR_COLLECTOR_AGENT_BIN", "build-collector.sh", str(AGENT_MANIFEST))


def gateway_collector_binary() -> str:
    """The gateway's collector: OTEL_MONITOR_COLLECTOR_GATEWAY_BIN (set by the Makefile) or its cached build."""
    return _binary("OTEL_MONITOR_COLLECTOR_GATEWAY_BIN", "build-collector.sh", str(GATEWAY_MANIFEST))


@dataclass
class CollectorPorts:
    """The ports of one collector process of the tier."""

    otlp_grpc: int
    otlp_http: int
    health: int
    prometheus: int
    telemetry: int

    @classmethod
    def free(cls) -> CollectorPorts:
        return cls(*free_ports(len(fields(cls))))

    def env(self) -> dict[str, str]:
        """The environment the collector configs read their addresses from."""
        return {
            "COLLECTOR_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.otlp_grpc}",
            "COLLECTOR_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.otlp_http}",
            "COLLECTOR_HEALTH_ENDPOINT": f"127.0.0.1:{self.health}",
            "COLLECTOR_PROMETHEUS_ENDPOINT": f"127.0.0.1:{self.prometheus}",
            "COLLECTOR_TELEMETRY_HOST": "127.0.0.1",
            "COLLECTOR_TELEMETRY_PORT": str(self.telemetry),
        }


@dataclass
class CollectorTier(ProcessGroup):
    """Starts ``gateways`` gateways, then the agent routing to them, and points ``stack``'s Prometheus at the
    gateways (span and backend metrics) and at all of them (their own telemetry); stops them in reverse.

    The stack needs Jaeger, VictoriaLogs and Prometheus running and no collector of its own on the same scrape jobs.
    Send the backend's OTLP to ``otlp_http_endpoint`` (the agent).
    """

    stack: DevStack
    gateways: int = 2
    sampling_percentage: float = 10
    slow_trace_ms: int = 10_000
    decision_wait: str = "60s"
    num_traces: int = 100_000
    agent_host_name: str = "tier-host"  # the agent's AGENT_HOST_NAME: its host metrics' `instance`
    agent_binary: str | None = None  # agent_collector_binary() by default
    gateway_binary: str | None = None  # gateway_collector_binary() by default
    agent_config: Path = AGENT_CONFIG
    gateway_config: Path = GATEWAY_CONFIG
    health_path: str = "/"
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.agent_ports = CollectorPorts.free()
        self.gateway_ports = [CollectorPorts.free() for _ in range(self.gateways)]

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.agent_ports.otlp_http}"

    @property
    def gateway_names(self) -> list[str]:
        """Each gateway's ``gateway`` label on the series it exports."""
        return [f"gateway-{index}" for index in range(self.gateways)]

    def _process(
        self, name: str, binary: str, config: Path, ports: CollectorPorts, env: dict[str, str]
    ) -> ManagedProcess:
        return ManagedProcess(
            name,
            [binary, "--config", str(config)],
            self.stack.logs / f"{name}.log",
            env={**ports.env(), **env},
            ready=http_ok(f"http://127.0.0.1:{ports.health}{self.health_path}"),
        )

    def gateway(self, index: int) -> ManagedProcess:
        env = {
            "GATEWAY_NAME": self.gateway_names[index],
            "GATEWAY_SAMPLING_PERCENTAGE": str(self.sampling_percentage),
            "GATEWAY_SLOW_TRACE_MS": str(self.slow_trace_ms),
            "GATEWAY_DECISION_WAIT": self.decision_wait,
            "GATEWAY_NUM_TRACES": str(self.num_traces),
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.stack.ports.jaeger_otlp_grpc}",
            "VICTORIALOGS_ENDPOINT": f"127.0.0.1:{self.stack.ports.victorialogs}",
        }
        binary = self.gateway_binary or gateway_collector_binary()
        return self._process(self.gateway_names[index], binary, self.gateway_config, self.gateway_ports[index], env)

    def agent(self, host_name: str | None = None) -> ManagedProcess:
        """The tier's agent, or with ``host_name`` another host's agent (ports of its own) routing to the same
        gateways."""
        endpoints = ", ".join(f"127.0.0.1:{ports.otlp_grpc}" for ports in self.gateway_ports)  # a YAML list
        env = {"AGENT_GATEWAY_ENDPOINTS": f"[{endpoints}]", "AGENT_HOST_NAME": host_name or self.agent_host_name}
        binary = self.agent_binary or agent_collector_binary()
        if host_name is None:
            return self._process("agent", binary, self.agent_config, self.agent_ports, env)
        return self._process(f"agent-{host_name}", binary, self.agent_config, CollectorPorts.free(), env)

    def start(self) -> CollectorTier:
        """Starts the gateways, then the agent; stopped in reverse, the agent flushes to the gateways first."""
        try:
            for index, name in enumerate(self.gateway_names):
                self.processes[name] = self.gateway(index).start()
            self.processes["agent"] = self.agent().start()
        except BaseException:
            self.stop()
            raise
        self.stack.scrape_targets("otel-collector", [ports.prometheus for ports in self.gateway_ports])
        self.stack.scrape_targets(
            "otel-collector-internal", [ports.telemetry for ports in (self.agent_ports, *self.gateway_ports)]
        )
        return self

"""Runs `otel-monitor serve` as a process with a generated config: for `make demo`, tests and benches."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from tools.devstack import DevStack, ManagedProcess, free_port
from tools.devstack.processes import http_ok
from tools.devstack.stack import REPO_ROOT

__all__ = ["MonitorProcess"]


class MonitorProcess:
    """The monitor on ``port`` (a free one by default), checking the stack's PostgreSQL and Redis.

    ``health`` and ``quota`` are merged over the defaults; ``env`` carries secrets the config references
    as ``${NAME}``.
    """

    def __init__(
        self,
        stack: DevStack,
        workdir: Path,
        *,
        port: int | None = None,
        service_name: str = "otel-monitor",
        health: dict | None = None,
        quota: dict | None = None,
        telemetry: dict | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "telemetry": {
                "service_name": service_name,
                "otlp_endpoint": stack.otlp_http_endpoint,
                "metric_export_interval_seconds": 1,
                "log_dir": str(self.workdir / "logs"),
                **(telemetry or {}),
            },
            "health": {
                "database_url": stack.postgres_url,
                "redis_url": stack.redis_url,
                "celery_broker_url": stack.redis_url,
                **(health or {}),
            },
            "quota": {
                "store_url": f"sqlite:///{self.workdir / 'quota.db'}",
                "redis_url": stack.redis_url,
                **(quota or {}),
            },
        }
        self.config_path = self.workdir / "monitor.yaml"
        self.env = env or {}
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MonitorProcess:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        argv = [sys.executable, "-m", "otel_monitor.monitor.cli", "serve", "--config", str(self.config_path)]
        self.process = ManagedProcess(
            "otel-monitor",
            argv,
            self.workdir / "monitor.out",
            env=self.env,
            cwd=REPO_ROOT,
            ready=http_ok(f"{self.url}/livez"),
        ).start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def __enter__(self) -> MonitorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

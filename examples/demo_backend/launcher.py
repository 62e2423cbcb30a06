"""Runs the demo backend's processes (uvicorn API, Celery prefork worker) against a dev stack and fake providers."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from otel_monitor.logs.files import read_log_records
from tools.devstack import DevStack, ManagedProcess, free_port
from tools.devstack.processes import http_ok
from tools.devstack.stack import REPO_ROOT

__all__ = ["DemoBackend", "DEMO_SECRETS", "OUTSIDE_PROBE_PATHS", "fake_provider_credentials"]

# Credentials the fake providers accept; the demo sends them the way the real backend would.
DEMO_SECRETS = {
    "gemini_api_key": "AIzaSyDemoGeminiKey0123456789abcdefghij",
    "stability_api_key": "sk-demo-stability-key-0123456789",
    "did_api_key": "ZGVtby11c2VyOmRlbW8tZGlkLXNlY3JldA",
    "youtube_client_id": "demo-client-id.apps.googleusercontent.com",
    "youtube_client_secret": "GOCSPX-demo-client-secret-0123",
    "youtube_refresh_token": "1//0demo-refresh-token-0123456789",
}


def fake_provider_credentials(secrets: dict[str, str] = DEMO_SECRETS) -> dict[str, str]:
    """The keyword arguments that make ``FakeProviders`` accept these credentials."""
    return {
        "gemini_key": secrets["gemini_api_key"],
        "stability_key": secrets["stability_api_key"],
        "did_key": secrets["did_api_key"],
        "youtube_client_id": secrets["youtube_client_id"],
        "youtube_client_secret": secrets["youtube_client_secret"],
        "youtube_refresh_token": secrets["youtube_refresh_token"],
    }


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


# What an uptime check from outside requests (GET, 2xx expected): the public API (its OpenAPI document: no side
# effect, unlike creating a project) and the health endpoint.
OUTSIDE_PROBE_PATHS = ("/openapi.json", "/livez")


class DemoBackend:
    """The API on a free port and ``worker_processes`` Celery children, all logging to ``workdir/logs``."""

    def __init__(
        self,
        stack: DevStack,
        provider_urls: dict[str, str],
        workdir: Path,
        *,
        metric_export_interval: float = 2.0,
        worker_processes: int = 2,
        api_port: int | None = None,
        secrets: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        service_prefix: str = "video",
        log_dir: Path | None = None,
        ca_bundle: Path | None = None,
    ) -> None:
        self.stack = stack
        self.service_prefix = service_prefix
        self.workdir = Path(workdir)
        self.api_port = api_port or free_port()
        self.worker_processes = worker_processes
        self.log_dir = Path(log_dir) if log_dir else self.workdir / "logs"
        secrets = secrets or DEMO_SECRETS
        hosts = {service: [url.split("://", 1)[1].rstrip("/")] for service, url in provider_urls.items()}
        self.env = {
            "PYTHONPATH": str(REPO_ROOT),
            "OTEL_MONITOR_OTLP_ENDPOINT": stack.otlp_http_endpoint,
            "OTEL_MONITOR_METRIC_EXPORT_INTERVAL_SECONDS": str(metric_export_interval),
            "OTEL_MONITOR_SPAN_SCHEDULE_DELAY_SECONDS": "0.5",
            "OTEL_MONITOR_LOG_DIR": str(self.log_dir),
            "OTEL_MONITOR_REDIS_URL": stack.redis_url,
            "OTEL_MONITOR_PROVIDER_HOSTS": json.dumps(hosts),
            "OTEL_MONITOR_ENVIRONMENT": "demo",
            "OTEL_MONITOR_SERVICE_VERSION": "0.1.0",
            "DEMO_REDIS_URL": stack.redis_url,
            "DEMO_GEMINI_URL": provider_urls["gemini"],
            "DEMO_STABILITY_URL": provider_urls["stability"],
            "DEMO_DID_URL": provider_urls["d-id"],
            "DEMO_YOUTUBE_URL": provider_urls["youtube"],
            "DEMO_YOUTUBE_TOKEN_URL": provider_urls["youtube"].rstrip("/") + "/token",
            "DEMO_WORK_DIR": str(self.workdir / "videos"),
            **{f"DEMO_{name.upper()}": value for name, value in secrets.items()},
            # The fake YouTube serves uploads over TLS with its own certificate (googleapiclient keeps https).
            **({"HTTPLIB2_CA_CERTS": str(ca_bundle)} if ca_bundle else {}),
            **(extra_env or {}),
        }
        self.processes: dict[str, ManagedProcess] = {}

    @property
    def api_service(self) -> str:
        return f"{self.service_prefix}-api"

    @property
    def worker_service(self) -> str:
        return f"{self.service_prefix}-worker"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def outside_probe_urls(self) -> list[str]:
        """The URLs of ``OUTSIDE_PROBE_PATHS`` on this API."""
        return [self.api_url + path for path in OUTSIDE_PROBE_PATHS]

    def api(self) -> ManagedProcess:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.demo_backend.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.api_port),
            "--no-access-log",
        ]
        return ManagedProcess(
            "video-api",
            argv,
            self.workdir / "video-api.out",
            cwd=REPO_ROOT,
            env={**self.env, "OTEL_MONITOR_SERVICE_NAME": self.api_service},
            ready=http_ok(f"{self.api_url}/livez"),
        )

    def worker(self) -> ManagedProcess:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "examples.demo_backend.tasks",
            "worker",
            "--loglevel=INFO",
            "--pool=prefork",
            f"--concurrency={self.worker_processes}",
            "-n",
            f"demo-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        output = self.workdir / "video-worker.out"
        started = time.time()

        def ready() -> bool:  # Celery logs "<name> ready." once it consumes; console logs may be off
            return any(
                r.get("logger") == "celery.apps.worker"
                and r.get("message", "").endswith(" ready.")
                and r.get("timestamp", "") >= _iso(started)
                for r in read_log_records(self.log_dir)
            )

        return ManagedProcess(
            "video-worker",
            argv,
            output,
            cwd=REPO_ROOT,
            env={**self.env, "OTEL_MONITOR_SERVICE_NAME": self.worker_service},
            ready=ready,
        )

    def start(self) -> DemoBackend:
        self.processes["worker"] = self.worker().start()
        self.processes["api"] = self.api().start()
        return self

    def stop(self) -> None:
        for name in ("api", "worker"):
            process = self.processes.pop(name, None)
            if process is not None:
                process.stop(timeout=30)

    def __enter__(self) -> DemoBackend:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

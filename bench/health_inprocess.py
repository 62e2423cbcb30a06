"""CPU time per health request of the monitor's ASGI app called in process: no server, no socket, no other load.

The app is `create_app` with one always-healthy check, tokens off and on; each request is a `GET` of the health
path driven straight into the app; the figure is the best of five rounds of process CPU time per request (what the
app costs, apart from uvicorn and the kernel; the shared host's noise moves it least).

    .venv/bin/python -m bench.health_inprocess [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from starlette.types import ASGIApp, Message

from otel_monitor.instrument.probe_paths import HEALTH_PATH
from otel_monitor.monitor.app import create_app
from otel_monitor.monitor.auth.config import ApiToken, AuthConfig, Scope, hash_token
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.health.service import HealthService


class _HealthyCheck:
    name = "redis"

    async def run(self) -> dict:
        return {"status": "healthy", "latency_ms": 1.2}


def _app(tokens: bool) -> ASGIApp:
    table = [ApiToken(name="bench", scopes=[Scope.READ], sha256=hash_token("b" * 40))] if tokens else []
    return create_app(MonitorConfig(auth=AuthConfig(tokens=table)), health=HealthService([_HealthyCheck()]))


async def _drive(app: ASGIApp, requests: int) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    for _ in range(requests):
        sent.clear()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": HEALTH_PATH,
            "raw_path": HEALTH_PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"accept", b"*/*")],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "extensions": {},
            "state": {},
        }
        await app(scope, receive, send)
    return sent


async def _cpu_us_per_request(tokens: bool, requests: int) -> float:
    app = _app(tokens)
    answer = await _drive(app, 100)  # the first report, and warm caches
    assert answer[0]["status"] == 200, answer
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        await _drive(app, requests)
        best = min(best, (time.process_time() - started) / requests * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    for tokens in (False, True):
        cpu = asyncio.run(_cpu_us_per_request(tokens, args.requests))
        print(f"tokens {'on ' if tokens else 'off'}: {cpu:6.1f} µs CPU per GET {HEALTH_PATH} (best of 5)")


if __name__ == "__main__":
    main()

"""Local stand-ins for where alerts go: an HTTP receiver, a Sentry envelope endpoint, an SMTP inbox and a real
Alertmanager; each records what it got so tests can count deliveries."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import threading
from collections import deque
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller

from tools.devstack import free_port, wait_until

__all__ = [
    "Receiver",
    "SentryEndpoint",
    "SmtpInbox",
    "AlertmanagerServer",
    "parse_envelope",
    "SENTRY_KEY",
    "SENTRY_PROJECT",
    "ALERTMANAGER",
]

SENTRY_KEY = "0123456789abcdef0123456789abcdef"
SENTRY_PROJECT = "4242"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def _serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _shutdown(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


class Receiver:
    """A local HTTP receiver that records every request; answers can be switched to any status, to hang, or be down."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[dict] = []
        self.statuses: deque[int] = deque()  # answered first, one each, then `status`
        self.status = 200
        self.hang = False
        self.release = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(body or b"null"),
                    }
                )
                if receiver.hang:
                    receiver.release.wait(30)
                status = receiver.statuses.popleft() if receiver.statuses else receiver.status
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"status": status, "echo": self.path}).encode())

            def log_message(self, *args):
                pass

        self._server = _serve(self.port, Handler)
        return self

    def stop(self) -> None:
        """Closes the port: the receiver is down until started again."""
        self.release.set()
        _shutdown(self._server)
        self._server = None
        self.release = threading.Event()

    def ids(self) -> list[str]:
        return [request["headers"].get("idempotency-key") for request in self.requests]


def parse_envelope(body: bytes) -> tuple[dict, list[tuple[dict, dict]]]:
    """A Sentry envelope: a JSON header line, then per item a JSON header line and its payload."""
    header_line, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        item_header_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_header_line)
        if "length" in item_header:
            payload, rest = rest[: item_header["length"]], rest[item_header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, json.loads(payload)))
    return json.loads(header_line), items


class SentryEndpoint:
    """A local endpoint accepting ``POST /api/<project>/envelope/``; records each envelope and its auth header."""

    def __init__(self) -> None:
        self.port = free_port()
        self.envelopes: list[dict] = []
        self.status = 200
        self._server: ThreadingHTTPServer | None = None

    def dsn(self, key: str = SENTRY_KEY) -> str:
        return f"http://{key}@127.0.0.1:{self.port}/{SENTRY_PROJECT}"

    def events(self) -> list[dict]:
        """The event payloads of every envelope, in arrival order."""
        return [
            payload
            for envelope in self.envelopes
            for header, payload in envelope["items"]
            if header.get("type") == "event"
        ]

    def start(self) -> SentryEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                header, items = parse_envelope(body)
                endpoint.envelopes.append(
                    {"path": self.path, "auth": self.headers.get("x-sentry-auth", ""), "header": header, "items": items}
                )
                self.send_response(endpoint.status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(
                    json.dumps({"id": header.get("event_id"), "echo": self.headers.get("x-sentry-auth", "")}).encode()
                )

            def log_message(self, *args):
                pass

        self._server = _serve(self.port, Handler)
        return self

    def stop(self) -> None:
        _shutdown(self._server)
        self._server = None


class SmtpInbox:
    """An aiosmtpd server keeping every message, or answering DATA with ``reply`` when set."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.reply: str | None = None
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        if self.reply:
            return self.reply
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(message["Subject"]) for message in self.messages]

    def start(self) -> SmtpInbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class AlertmanagerServer:
    """A real Alertmanager on a free port, routing everything to a null receiver, or with ``webhook_url`` to its own
    webhook receiver (one group per alert, sent at once, resolved too); ``resolve_timeout`` in seconds (None: its
    default, 5 minutes) is how long it keeps an alert posted without ``endsAt``."""

    def __init__(self, workdir: Path, *, resolve_timeout: float | None = None, webhook_url: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.resolve_timeout = resolve_timeout
        self.webhook_url = webhook_url
        self._process: subprocess.Popen | None = None

    def _config(self) -> str:
        config: dict = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
        if self.resolve_timeout is not None:
            config["global"] = {"resolve_timeout": f"{self.resolve_timeout:g}s"}
        if self.webhook_url is not None:
            config["route"] = {
                "receiver": "hook",
                "group_by": ["..."],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            }
            config["receivers"] = [
                {"name": "hook", "webhook_configs": [{"url": self.webhook_url, "send_resolved": True}]}
            ]
        return json.dumps(config)  # JSON is YAML

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AlertmanagerServer:
        config = self.workdir / "alertmanager.yml"
        config.write_text(self._config())
        self._process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def ready() -> bool:
            if self._process.poll() is not None:
                raise RuntimeError("alertmanager exited: " + self._process.stderr.read().decode()[-2000:])
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, interval=0.2, what="alertmanager ready")
        return self

    def alerts(self, **filters: str) -> list[dict]:
        """``GET /api/v2/alerts``; filters as in its API (``active``, ``silenced`` ...)."""
        return httpx.get(f"{self.url}/api/v2/alerts", params=filters, timeout=5).json()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

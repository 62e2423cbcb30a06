"""Run the four fake providers in-process, each on its own 127.0.0.1 port, with uvicorn in background threads."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from otel_monitor.instrument.providers import SERVICE_KEYS

from .did import DidAccount, create_did_app
from .faults import FaultState
from .gemini import create_gemini_app
from .stability import StabilityAccount, create_stability_app
from .youtube import create_youtube_app

__all__ = ["SERVICE_KEYS", "FakeProviders"]

TLS_HANDSHAKE_BYTE = 0x16
STARTUP_TIMEOUT_SECONDS = 10.0


def _control_call(url: str, method: str = "GET", timeout: float = 5.0) -> bytes:
    """Call a /_fake endpoint with urllib, so instrumented HTTP clients under test never see these calls."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listening_socket(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets; without it every keep-alive
    # response waits ~40 ms on Nagle and the client's delayed ACK, which would skew every measured latency.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _write_self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A throwaway certificate for ``host`` and localhost that is its own CA; returns (cert, key) paths."""
    import ipaddress
    from datetime import datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "otel-monitor fake providers")])
    now = datetime.now(UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host) != ipaddress.ip_address("127.0.0.1"):
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-providers-cert.pem", directory / "fake-providers-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


async def _until_readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


class _PlainOrTlsFront:
    """One port that speaks plain HTTP and TLS (told apart by peeking at the first byte), relayed to a backend port.

    googleapiclient keeps the ``https`` scheme of its media-upload URL when ``api_endpoint`` is overridden, so a
    client pointed at ``http://127.0.0.1:PORT`` uploads to ``https://127.0.0.1:PORT``; this front serves both.
    """

    def __init__(self, sock: socket.socket, backend_port: int, tls: ssl.SSLContext) -> None:
        self._sock = sock
        self._backend_port = backend_port
        self._tls = tls
        self._relays: set[asyncio.Task] = set()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._sock.setblocking(False)
        try:
            while True:
                conn, _ = await loop.sock_accept(self._sock)
                relay = asyncio.create_task(self._relay(conn))
                self._relays.add(relay)
                relay.add_done_callback(self._relays.discard)
        finally:
            self._sock.close()
            for relay in list(self._relays):
                relay.cancel()

    async def _relay(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        try:
            await _until_readable(conn)
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                conn.close()
                return
            tls = self._tls if first[0] == TLS_HANDSHAKE_BYTE else None
            reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(reader)
            extra = {"ssl_handshake_timeout": 10.0} if tls else {}
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, ssl=tls, **extra)
            client = asyncio.StreamWriter(transport, protocol, reader, loop)
        except (TimeoutError, OSError, ssl.SSLError):
            conn.close()
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        try:
            backend_reader, backend = await asyncio.open_connection("127.0.0.1", self._backend_port)
        except (OSError, asyncio.CancelledError) as failure:
            client.close()
            if isinstance(failure, asyncio.CancelledError):
                raise
            return
        pipes = [asyncio.create_task(_pipe(reader, backend)), asyncio.create_task(_pipe(backend_reader, client))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            for writer in (client, backend):
                writer.close()


class _ServiceThread(threading.Thread):
    """One fake app served by uvicorn on its own event loop, optionally behind the plain-or-TLS front."""

    def __init__(self, key: str, app: FastAPI, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        super().__init__(name=f"fake-{key}", daemon=True)
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = _ThreadServer(config)
        self._sock = sock
        self._tls = tls

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        if self._tls is None:
            await self.server.serve(sockets=[self._sock])
            return
        backend = _listening_socket("127.0.0.1", 0)
        front = asyncio.create_task(_PlainOrTlsFront(self._sock, backend.getsockname()[1], self._tls).serve())
        try:
            await self.server.serve(sockets=[backend])
        finally:
            front.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await front


class FakeProviders:
    """The four fake providers ("gemini", "stability", "d-id", "youtube") running on local ports.

    The YouTube port also answers TLS with a throwaway self-signed certificate (see ``ca_bundle``), because the
    real googleapiclient uploads media over https even when its ``api_endpoint`` is plain http.
    """

    def __init__(
        self,
        gemini_key: str = "fake-gemini-key",
        stability_key: str = "sk-fake-stability-key",
        did_key: str = "fake-did-user:fake-did-secret",
        youtube_client_id: str = "fake-client-id.apps.googleusercontent.com",
        youtube_client_secret: str = "fake-client-secret",
        youtube_refresh_token: str = "1//fake-refresh-token",
        *,
        ports: Mapping[str, int] | None = None,
        host: str = "127.0.0.1",
        stability_credits: float = 100.0,
        stability_cost_per_image: float = 0.2,
        did_credits_total: int = 100,
        did_credits_remaining: int | None = None,
        tls_dir: str | Path | None = None,
    ) -> None:
        unknown = set(ports or {}) - set(SERVICE_KEYS)
        if unknown:
            raise ValueError(f"unknown service key(s) {sorted(unknown)}; known: {list(SERVICE_KEYS)}")
        self.host = host
        self._ports = {key: int((ports or {}).get(key, 0)) for key in SERVICE_KEYS}
        self._faults = {key: FaultState() for key in SERVICE_KEYS}
        self.stability_account = StabilityAccount(stability_credits, stability_cost_per_image)
        self.did_account = DidAccount(did_credits_total, did_credits_remaining)
        self._apps = {
            "gemini": create_gemini_app(gemini_key, self._faults["gemini"]),
            "stability": create_stability_app(stability_key, self._faults["stability"], self.stability_account),
            "d-id": create_did_app(did_key, self._faults["d-id"], self.did_account),
            "youtube": create_youtube_app(
                youtube_client_id, youtube_client_secret, youtube_refresh_token, self._faults["youtube"]
            ),
        }
        self._requested_tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._tls_dir: Path | None = None
        self._threads: dict[str, _ServiceThread] = {}
        self._base_urls: dict[str, str] = {}
        self.ca_cert: Path | None = None
        self.ca_bundle: Path | None = None

    # lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> FakeProviders:
        """Bind all four ports, start the servers and return once every one of them answers."""
        if self._threads:
            raise RuntimeError("fake providers already started")
        for faults in self._faults.values():
            faults.released = False
        tls = self._prepare_tls()
        sockets: dict[str, socket.socket] = {}
        try:
            for key in SERVICE_KEYS:
                sockets[key] = _listening_socket(self.host, self._ports[key])
        except OSError:
            for sock in sockets.values():
                sock.close()
            self._remove_tls_files()
            raise
        for key, sock in sockets.items():
            self._base_urls[key] = f"http://{self.host}:{sock.getsockname()[1]}"
            thread = _ServiceThread(key, self._apps[key], sock, tls if key == "youtube" else None)
            self._threads[key] = thread
            thread.start()
        try:
            self._wait_until_answering()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every server (pending latencies and hangs end at once) and remove generated TLS files."""
        for faults in self._faults.values():
            faults.released = True
        for thread in self._threads.values():
            thread.server.should_exit = True
        for thread in self._threads.values():
            thread.join(timeout)
        self._threads.clear()
        self._base_urls.clear()
        self._remove_tls_files()

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # queries and controls --------------------------------------------------------------------------------------

    @property
    def base_urls(self) -> dict[str, str]:
        return dict(self._base_urls)

    def base_url(self, service_key: str) -> str:
        self._check_key(service_key)
        if service_key not in self._base_urls:
            raise RuntimeError("fake providers are not running; call start() first")
        return self._base_urls[service_key]

    def faults(self, service_key: str) -> FaultState:
        self._check_key(service_key)
        return self._faults[service_key]

    def set_fault(
        self,
        service_key: str,
        mode: str | None = None,
        latencies: Sequence[float] | None = None,
        hang_seconds: float | None = None,
    ) -> dict:
        """Change a service's fault settings (None keeps a setting); returns the new settings."""
        return self.faults(service_key).configure(mode=mode, latencies=latencies, hang_seconds=hang_seconds)

    def stats(self, service_key: str) -> dict:
        """``{"requests": {path: n}, "mode": ..., "latencies": [...], "hang_seconds": ...}``."""
        return self.faults(service_key).stats()

    def reset(self, service_key: str | None = None) -> None:
        """Reset faults, counters and balances of one service (or all) through its /_fake/reset endpoint."""
        for key in [service_key] if service_key else SERVICE_KEYS:
            _control_call(f"{self.base_url(key)}/_fake/reset", method="POST")

    # internals -------------------------------------------------------------------------------------------------

    def _check_key(self, service_key: str) -> None:
        if service_key not in SERVICE_KEYS:
            raise KeyError(f"unknown service key {service_key!r}; known: {list(SERVICE_KEYS)}")

    def _prepare_tls(self) -> ssl.SSLContext:
        if self._requested_tls_dir is not None:
            self._requested_tls_dir.mkdir(parents=True, exist_ok=True)
            self._tls_dir = self._requested_tls_dir
        else:
            self._tls_dir = Path(tempfile.mkdtemp(prefix="fake-providers-tls-"))
        cert, key = _write_self_signed_certificate(self._tls_dir, self.host)
        import certifi

        bundle = self._tls_dir / "ca-bundle.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + cert.read_bytes())
        self.ca_cert, self.ca_bundle = cert, bundle
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context

    def _remove_tls_files(self) -> None:
        if self._tls_dir is not None and self._tls_dir != self._requested_tls_dir:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self.ca_cert = self.ca_bundle = None
        self._tls_dir = None

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        for key, base in self._base_urls.items():
            while True:
                with contextlib.suppress(OSError):
                    _control_call(f"{base}/_fake/stats", timeout=1.0)
                    break
                if time.monotonic() > deadline or not self._threads[key].is_alive():
                    raise RuntimeError(f"fake {key} did not start answering on {base}")
                time.sleep(0.02)

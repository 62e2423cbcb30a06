"""Starts, probes and stops one server process, its output kept in a log file."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx

__all__ = ["ManagedProcess", "ProcessExited", "free_port", "wait_until", "http_ok", "tcp_open"]


class ProcessExited(RuntimeError):
    """A process that should be serving has exited."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now (held together while picked,
    so no two are the same), drawn at random below the kernel's ephemeral range: outgoing connections and other
    processes' ``bind(0)`` take their ports from that range, so a port picked there could be taken between the pick
    and the server's own bind."""
    candidates = _SERVER_PORTS.sample(_server_port_range(), len(_server_port_range()))
    picked: list[int] = []
    with contextlib.ExitStack() as held:
        for port in candidates:
            sock = held.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            picked.append(port)
            if len(picked) == count:
                return picked
    raise RuntimeError(f"fewer than {count} free ports on 127.0.0.1 in {_server_port_range()}")


_SERVER_PORTS = random.SystemRandom()


def _server_port_range() -> range:
    """The 12,000 ports below the first ephemeral one (/proc/sys/net/ipv4/ip_local_port_range; Linux's default
    32768 where it cannot be read)."""
    try:
        first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768
    return range(max(1024, first_ephemeral - 12_000), first_ephemeral)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1, what: str = "condition"):
    """Polls ``predicate`` until it returns something truthy; raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except ProcessExited:
            raise
        except Exception as exc:  # the thing polled is not up yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


def http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1.0).status_code == 200


def tcp_open(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    return probe


class ManagedProcess:
    """A server process: started in its own process group, ready when ``ready()`` holds, stopped with SIGTERM."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready: Callable[[], object] | None = None,
        user: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.ready = ready
        self.user = user
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = self.argv
        if self.user and os.geteuid() == 0:
            argv = ["runuser", "-u", self.user, "--", *argv]
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True
            )
        finally:
            log.close()
        try:
            if self.ready is not None:
                wait_until(self._ready_or_dead, self.start_timeout, what=f"{self.name} to be ready")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready; its output:\n{self.tail()}") from None
        except BaseException:
            # Interrupted while waiting (Ctrl-C, a stop signal) or it died: the caller has no handle on this
            # process yet, so it is stopped here or it would outlive us in its own session.
            self.stop()
            raise
        return self

    def _ready_or_dead(self) -> bool:
        if self.process.poll() is not None:
            raise ProcessExited(f"{self.name} exited with {self.process.returncode}; its output:\n{self.tail()}")
        return bool(self.ready())

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def kill(self) -> None:
        self.stop(timeout=5, sig=signal.SIGKILL)


class ProcessGroup:
    """Named servers started in order (``start`` fills ``processes``) and stopped in reverse; a context manager."""

    processes: dict[str, ManagedProcess]

    def start(self) -> Self:
        raise NotImplementedError

    def __getitem__(self, name: str) -> ManagedProcess:
        return self.processes[name]

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

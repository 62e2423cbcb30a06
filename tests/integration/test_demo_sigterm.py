"""`make demo` stopped by SIGTERM (kill, timeout, a service manager) stops every process it started, as Ctrl-C does."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from examples.run_demo import API_PORT, MONITOR_PORT, PROVIDER_PORTS
from tools.devstack import StackPorts, server_workdir, wait_until
from tools.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.stack

DEMO_PORTS = sorted({*dataclasses.astuple(StackPorts()), API_PORT, MONITOR_PORT, *PROVIDER_PORTS.values()})
START_UP_SECONDS = 300
STOP_SECONDS = 120


def _port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (SO_REUSEADDR, as servers bind: closed connections in
    TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(process: psutil.Process) -> bool:
    try:  # a zombie has exited; only its entry waits for a parent to read it
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.NoSuchProcess:
        return "(exited)"


def _started_since(started_at: float, marker_dir: Path) -> list[psutil.Process]:
    """What a demo started, found even when no longer its child: the processes whose TMPDIR is ``marker_dir`` (they
    inherit the demo's environment) and those listening on a demo port that began after it (Redis, for one,
    overwrites the environment it shows)."""
    found = {}
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.environ().get("TMPDIR") == str(marker_dir):
                found[process.pid] = process
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port in DEMO_PORTS and connection.pid:
            try:
                process = psutil.Process(connection.pid)
                if process.create_time() >= started_at:
                    found[process.pid] = process
            except psutil.NoSuchProcess:
                continue
    return list(found.values())


class _Demo:
    """`python -m examples.run_demo` as a child process, its temporary files (and so its work dirs) in a dir of
    its own."""

    def __init__(self, *args: str) -> None:
        self.tmpdir = server_workdir("otel-monitor-demo-sigterm-")
        self.output = self.tmpdir / "run_demo.out"
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "examples.run_demo", *args],
                cwd=REPO_ROOT,
                env={**os.environ, "TMPDIR": str(self.tmpdir)},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.psutil = psutil.Process(self.process.pid)
        self.started_at = self.psutil.create_time()

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_ports(self, ports: list[int]) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"run_demo exited with {self.process.returncode}:\n{self.text()[-4000:]}")
            return all(_answers(port) for port in ports)

        wait_until(up, START_UP_SECONDS, interval=0.5, what=f"the demo's ports {ports}")

    def started(self) -> list[psutil.Process]:
        """Every process this demo started that runs now."""
        try:
            children = self.psutil.children(recursive=True)
        except psutil.NoSuchProcess:  # run_demo itself has exited
            children = []
        return children + _started_since(self.started_at, self.tmpdir)

    def kill_leftovers(self, tracked: list[psutil.Process]) -> None:
        """Kills whatever of this run still runs (after a failure), so that nothing keeps the demo's ports from the
        next run, and removes its files."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for process in [*tracked, *self.started()]:
            if _alive(process):
                process.kill()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture
def start_demo() -> Iterator:
    taken = [port for port in DEMO_PORTS if not _port_free(port)]
    if taken:
        pytest.fail(f"the demo's fixed ports {taken} are in use by something else; stop it first")
    runs: list[tuple[_Demo, list[psutil.Process]]] = []

    def start(*args: str) -> tuple[_Demo, list[psutil.Process]]:
        demo, tracked = _Demo(*args), []
        runs.append((demo, tracked))
        return demo, tracked

    yield start
    for demo, tracked in runs:
        demo.kill_leftovers(tracked)


def _assert_sigterm_stops_everything(demo: _Demo, tracked: list[psutil.Process]) -> None:
    tracked.extend(demo.started())
    assert tracked, "the demo had started no process yet"
    names = sorted({_name(process) for process in tracked})
    demo.process.send_signal(signal.SIGTERM)
    try:
        demo.process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run_demo still runs {STOP_SECONDS} s after SIGTERM:\n{demo.text()[-4000:]}")
    # It stops everything, then dies of the signal itself, as a program that had not caught it would.
    assert demo.process.returncode == -signal.SIGTERM, demo.text()[-4000:]
    assert "SIGTERM: everything the demo started is stopped" in demo.text()
    left = [f"{process.pid} {_name(process)}" for process in tracked + demo.started() if _alive(process)]
    assert not left, f"still running after the demo stopped (of {names}): {left}"
    taken = [port for port in DEMO_PORTS if not _port_free(port)]
    assert not taken, f"ports still held after the demo stopped: {taken}"


def test_sigterm_while_serving_stops_every_process_and_frees_every_port(start_demo):
    demo, tracked = start_demo("--serve-only")
    demo.wait_for_ports(DEMO_PORTS)
    _assert_sigterm_stops_everything(demo, tracked)


def test_sigterm_during_start_up_stops_what_was_started(start_demo):
    """The stack starts Jaeger first: SIGTERM once it answers, while the rest is still starting."""
    demo, tracked = start_demo()
    demo.wait_for_ports([StackPorts().jaeger_query_http])
    _assert_sigterm_stops_everything(demo, tracked)

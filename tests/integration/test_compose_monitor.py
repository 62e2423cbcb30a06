"""The compose monitor starts: its image's equivalent, built without Docker from the Dockerfile compose names."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import venv
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import yaml

from tests.support.backends import fresh_postgres_database
from tools.devstack import free_port, wait_until
from tools.devstack.processes import ProcessExited
from tools.devstack.stack import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SERVICE = "monitor"
# Compose's ${NAME}, ${NAME:-default} and ${NAME-default}.
_COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")
# What .dockerignore keeps out of the build context, among the files a COPY line names.
_IGNORED = ("__pycache__", ".egg-info")


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _words(arguments: str) -> list[str]:
    """The words of an instruction: the JSON (exec) form or the shell form."""
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def compose_interpolate(value: str, environ: dict[str, str]) -> str:
    """A compose file value with ${NAME:-default} replaced as `docker compose` does (from ``environ``)."""

    def substitute(match: re.Match[str]) -> str:
        name, op, default = match["name"], match["op"], match["default"] or ""
        if op == ":-" and not environ.get(name):
            return default
        return environ.get(name, default if op == "-" else "")

    return _COMPOSE_VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def _copies(arguments: str, workdir: PurePosixPath, context: Path) -> dict[PurePosixPath, Path]:
    """{path in the image: file of the build context} of one COPY line."""
    *sources, target = [w for w in _words(arguments) if not w.startswith("--")]
    destination, files = workdir / target, {}
    for source in sources:
        path = context / source
        if path.is_dir():  # Docker copies the directory's contents
            for file in path.rglob("*"):
                parts = file.relative_to(path).parts
                if file.is_file() and not any(p.endswith(_IGNORED) for p in parts):
                    files[destination.joinpath(*parts)] = file
        else:
            files[destination / path.name if target.endswith("/") or len(sources) > 1 else destination] = path
    return files


def copied_files(dockerfile: Path, context: Path) -> dict[PurePosixPath, Path]:
    """{path in the image: file of the build context} of everything the Dockerfile's COPY lines copy."""
    workdir, files = PurePosixPath("/"), {}
    for keyword, arguments in dockerfile_instructions(dockerfile.read_text()):
        if keyword == "WORKDIR":
            workdir = workdir / arguments
        elif keyword == "COPY":
            files.update(_copies(arguments, workdir, context))
    return files


def build_image_equivalent(dockerfile: Path, context: Path, root: Path) -> tuple[Path, Path, Path, dict, list]:
    """What the Dockerfile builds, in ``root``: the image's file system holding ONLY what the COPY lines copy, a
    fresh venv installed as its RUN pip line installs. Returns (image root, venv, WORKDIR in it, ENV, CMD)."""
    venv_dir, image = root / "venv", root / "image"
    venv.create(venv_dir, with_pip=True)
    workdir, env, cmd = PurePosixPath("/"), {}, []
    for keyword, arguments in dockerfile_instructions(dockerfile.read_text()):
        if keyword == "WORKDIR":
            workdir = workdir / arguments
            (image / workdir.relative_to("/")).mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            for target, file in _copies(arguments, workdir, context).items():
                (image / target.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, image / target.relative_to("/"))
        elif keyword == "RUN" and "pip install" in arguments:
            for command in arguments.split("&&"):
                words = shlex.split(command)
                if words[:2] == ["pip", "install"]:
                    # --no-cache-dir only keeps the image small; pip's own cache (outside the repo) is fine here.
                    pip_args = [w for w in words[2:] if w != "--no-cache-dir"]
                    subprocess.run(
                        [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "-q", *pip_args],
                        cwd=image / workdir.relative_to("/"),
                        check=True,
                        timeout=900,
                    )
        elif keyword == "ENV":
            words = _words(arguments)
            pairs = [w.split("=", 1) for w in words] if "=" in words[0] else [words[:1] + [" ".join(words[1:])]]
            env.update(dict(pairs))
        elif keyword == "CMD":
            cmd = _words(arguments)
    return image, venv_dir, image / workdir.relative_to("/"), env, cmd


def _monitor_build() -> tuple[dict, dict, Path, Path]:
    """(compose file, the monitor service, its Dockerfile, its build context)."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    service = compose["services"][SERVICE]
    build = service["build"]
    context = REPO_ROOT / build["context"]
    return compose, service, context / build.get("dockerfile", "Dockerfile"), context


def test_monitor_image_holds_the_config_and_the_rules_it_names():
    """The image compose builds for the monitor holds the package, the config of compose's command and the rules
    file that config names (relative to it), and nothing of the tests, the demo backend or the benches."""
    from otel_monitor.monitor.config import MonitorConfig
    from otel_monitor.monitor.config_file import load_config_file

    _compose, service, dockerfile, context = _monitor_build()
    files = copied_files(dockerfile, context)
    config = PurePosixPath(service["command"][service["command"].index("--config") + 1])
    assert config in files
    rules_file = load_config_file(files[config], MonitorConfig).alerting.rules_file
    assert PurePosixPath(os.path.normpath(config.parent / rules_file)) in files
    assert any(path.name == "cli.py" and path.parent.parts[-2:] == ("otel_monitor", "monitor") for path in files)
    assert not any(part in ("tests", "demo_backend", "bench") for path in files for part in path.parts)


def to_local_servers(value: str, servers: dict[str, str], services: set[str]) -> str:
    """A compose environment value with the address of each compose service replaced by a local real server
    (its URL gives host, port and path; the value keeps its own scheme and credentials), and 0.0.0.0 by loopback."""
    if value == "0.0.0.0":
        return "127.0.0.1"
    if "://" not in value:
        return value
    url = urlsplit(value)
    if url.hostname not in services:
        return value
    assert url.hostname in servers, f"{SERVICE} reaches compose service {url.hostname!r}: give it a local server"
    local = urlsplit(servers[url.hostname])
    credentials = url.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{local.hostname}:{local.port}" if credentials else f"{local.hostname}:{local.port}"
    return urlunsplit((url.scheme, netloc, local.path or url.path, url.query, url.fragment))


@pytest.mark.stack
def test_compose_monitor_image_equivalent_serves_and_passes_check_config(stack, tmp_path):
    """The monitor's image, built without Docker as its Dockerfile says (only the COPYed files, a fresh venv, its pip
    install), runs compose's command with compose's environment (compose hosts mapped to the stack's PostgreSQL,
    Redis, collector and Prometheus; no promtool on the PATH, as in the image): /livez answers 200, the backend's
    database and Redis are reached, and `otel-monitor check-config` passes on the compose config."""
    compose, service, dockerfile, context = _monitor_build()
    image, venv_dir, workdir, image_env, cmd = build_image_equivalent(dockerfile, context, tmp_path)
    in_image = {f"/{p.relative_to(image).as_posix()}" for p in image.rglob("*") if p.is_file()}
    copied = {str(path) for path in copied_files(dockerfile, context)}
    assert copied <= in_image  # and besides them only what pip's build of the project leaves beside it
    assert all(".egg-info/" in path or "/build/" in path for path in in_image - copied), sorted(in_image - copied)

    # The image has Python, its venv's scripts and the FFmpeg it installs; promtool is not there.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ffmpeg").symlink_to(shutil.which("ffmpeg"))
    servers = {
        "postgres": fresh_postgres_database(stack.postgres_url, "compose"),
        "redis": stack.redis_url,
        "otel-collector": stack.otlp_http_endpoint,
        "prometheus": stack.prometheus_url,
    }
    port = free_port()
    env = {
        "PATH": f"{venv_dir / 'bin'}{os.pathsep}{bin_dir}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        **image_env,
        "OTEL_MONITOR_PORT": str(port),
    }
    for name, value in (service.get("environment") or {}).items():
        env[name] = to_local_servers(compose_interpolate(str(value), os.environ), servers, set(compose["services"]))
    # Paths of the image's file system in the command are under ``image`` here.
    argv = [
        str(image / arg[1:]) if arg.startswith("/") and (image / arg[1:]).exists() else arg
        for arg in service.get("command", cmd)
    ]
    assert argv != list(service.get("command", cmd)), "the command names no file of the image"
    assert shutil.which(argv[0], path=env["PATH"]) == str(venv_dir / "bin" / argv[0])
    assert shutil.which("promtool", path=env["PATH"]) is None

    log = (tmp_path / "monitor.out").open("w")
    process = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:

        def live() -> bool:
            if process.poll() is not None:
                raise ProcessExited((tmp_path / "monitor.out").read_text()[-3000:])
            return httpx.get(f"{url}/livez", timeout=2).status_code == 200

        wait_until(live, 120, interval=0.5, what="the compose monitor's /livez")
        checks = wait_until(
            lambda: httpx.get(f"{url}/api/v1/system/health", timeout=10).json()["checks"], 30, what="the health report"
        )
        # Reached: healthy, or degraded when this shared machine makes them answer slowly; never unhealthy.
        assert checks["database"]["status"] in ("healthy", "degraded"), checks["database"]
        assert checks["redis"]["status"] in ("healthy", "degraded"), checks["redis"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()

    config = argv[argv.index("--config") + 1]
    result = subprocess.run(
        ["otel-monitor", "check-config", config], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "alert rules, PromQL checked by promql-parser)" in result.stdout
    assert "warning" not in result.stderr

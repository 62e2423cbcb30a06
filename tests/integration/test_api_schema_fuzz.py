"""Schemathesis against a served monitor (alerting on, auth on): every operation of its /openapi.json, a bounded,
seeded run. No server error but the health endpoint's documented 503, and every status, content type and body as
documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.monitor import API_TOKENS, secured_monitor
from tests.support.receivers import Receiver

# Per operation: examples, then coverage and fuzzing with this many cases; a fixed seed, so a failure reproduces.
_MAX_EXAMPLES = "10"
_SEED = "20261130"
_CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# The health endpoint answers 503 while a dependency fails: documented, not a server error.
_CONFIG = """
[[operations]]
include-path = "/api/v1/system/health"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""


def test_schemathesis_finds_nothing_undocumented(stack, tmp_path):
    """Every operation, admin token: the run passes its checks within the time bound."""
    receiver = Receiver().start()
    process = secured_monitor(stack, tmp_path / "monitor", f"{receiver.url}/hook", service_name="monitor-fuzz")
    config = tmp_path / "schemathesis.toml"
    config.write_text(_CONFIG)
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    try:
        with process:
            result = subprocess.run(
                [
                    binary,
                    "--no-color",
                    "--config-file",
                    str(config),
                    "run",
                    f"{process.url}/openapi.json",
                    "--header",
                    f"Authorization: Bearer {API_TOKENS['admin']}",
                    "--checks",
                    _CHECKS,
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--max-examples",
                    _MAX_EXAMPLES,
                    "--seed",
                    _SEED,
                    "--generation-deterministic",
                    "--workers",
                    "1",
                    "--request-timeout",
                    "20",
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )
    finally:
        receiver.stop()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

"""The FFmpeg check: ``<binary> -version`` runs and prints ffmpeg's version."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.monitor.health.checks.base import BaseCheck, describe_error
from otel_monitor.monitor.health.status import HEALTHY
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["FfmpegCheck", "parse_ffmpeg_version"]

_FFMPEG_VERSION = re.compile(r"^\s*ffmpeg version (\S+)", re.MULTILINE)


def parse_ffmpeg_version(output: str) -> str | None:
    """What ffmpeg prints after "ffmpeg version " ("5.1.6-0+deb12u1"), or None if it is not ffmpeg's banner."""
    match = _FFMPEG_VERSION.search(output)
    return match.group(1) if match else None


class FfmpegCheck(BaseCheck):
    """``<binary> -version`` runs (async subprocess) and prints ffmpeg's version."""

    name = "ffmpeg"
    error_code = SystemErrorCode.FFMPEG_NOT_FOUND
    _fields = ("version",)

    def __init__(self, binary: str = "ffmpeg", *, scrubber: SecretScrubber = default_scrubber) -> None:
        self._binary = binary
        self._scrubber = scrubber

    async def run(self) -> dict[str, Any]:
        try:
            process = await asyncio.create_subprocess_exec(
                self._binary,
                "-version",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except FileNotFoundError:
            return self.failed(f"{self._binary} not found")
        except OSError as exc:
            return self.failed(describe_error(exc, self._scrubber))
        try:
            output, _ = await process.communicate()
        finally:
            if process.returncode is None:  # cancelled by the service's timeout: leave no process behind
                process.kill()
        if process.returncode != 0:
            return self.failed(f"{self._binary} -version exited with {process.returncode}")
        version = parse_ffmpeg_version(output.decode(errors="replace"))
        if version is None:
            return self.failed(f"{self._binary} -version printed no ffmpeg version")
        return {"status": HEALTHY, "version": version}

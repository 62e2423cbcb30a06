"""What every health check shares: the protocol the service runs, the failed shape and scrubbed error texts."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

from otel_monitor.instrument.error_codes import SystemErrorCode
from otel_monitor.monitor.health.status import DEGRADED, HEALTHY, UNHEALTHY
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["HealthCheck", "BaseCheck", "BACKSTOP_SECONDS", "describe_error", "register_url_secret", "latency_result"]

# Checks do not time out themselves (the service's timeout does); this only bounds sockets left behind.
BACKSTOP_SECONDS = 10
_MAX_ERROR_LENGTH = 200
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


@runtime_checkable
class HealthCheck(Protocol):
    """What the service runs: ``name`` keys the result in the report."""

    name: str

    async def run(self) -> dict[str, Any]: ...


class BaseCheck:
    """A check of one dependency: its name, the error code of its P0 condition and the fields of its result."""

    name: str
    error_code: SystemErrorCode
    _fields: tuple[str, ...]

    def failed(self, error: str) -> dict[str, Any]:
        """This check's shape with no measurement: unhealthy, with ``error``."""
        return {"status": UNHEALTHY, **dict.fromkeys(self._fields), "error": error}


def describe_error(error: BaseException | str, scrubber: SecretScrubber = default_scrubber) -> str:
    """A short, one-line, scrubbed description of a failure: no URL userinfo, no registered secret."""
    if isinstance(error, BaseException):
        message = str(error).strip()
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    else:
        text = str(error)
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = scrubber.scrub_text(_USERINFO.sub(r"\g<scheme>", line))
    return line if len(line) <= _MAX_ERROR_LENGTH else line[: _MAX_ERROR_LENGTH - 3] + "..."


def register_url_secret(url: str, scrubber: SecretScrubber) -> None:
    """So a password in the URL is scrubbed even where a library quotes it without the URL around it."""
    try:
        parts = urlsplit(url)
        passwords = [parts.password, *parse_qs(parts.query).get("password", ())]
    except ValueError:
        return
    for password in filter(None, passwords):
        scrubber.register(password)
        scrubber.register(unquote(password))


async def confirmed_latency_ms(probe: Callable[[], Awaitable[float]], degraded_above_ms: float) -> float:
    """The time ``probe()`` took, in ms; one over ``degraded_above_ms`` is measured once more and the faster kept.

    A round trip on loopback can be held up by this process rather than the dependency (the event loop busy with the
    other checks, a CPU spike on a shared host); a dependency that is really slow is slow twice. Errors propagate.
    """
    latency_ms = await probe()
    if latency_ms > degraded_above_ms:
        latency_ms = min(latency_ms, await probe())
    return latency_ms


def latency_result(latency_ms: float, degraded_above_ms: float) -> dict[str, Any]:
    """Healthy with ``latency_ms``; degraded, saying by how much, when it took longer than ``degraded_above_ms``."""
    result: dict[str, Any] = {"status": HEALTHY, "latency_ms": round(latency_ms, 2)}
    if latency_ms > degraded_above_ms:
        result["status"] = DEGRADED
        result["error"] = f"answered in {latency_ms:.0f} ms (over {degraded_above_ms:.0f} ms)"
    return result

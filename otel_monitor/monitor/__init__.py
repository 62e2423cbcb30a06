"""The monitor service that runs beside the backend (`otel-monitor serve`): health, quota, alerting, stores.

It needs the ``[monitor]`` extra; ``main`` is the ``otel-monitor`` command, which says so when it is missing.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The ``otel-monitor`` command (``otel_monitor.monitor.cli``), or exit status 2 and the install command when the
    service's dependencies are not installed (``pip install otel-monitor`` is the library alone)."""
    try:
        from otel_monitor.monitor.cli import main as cli_main
    except ModuleNotFoundError as missing:
        print(
            f"otel-monitor: the monitor service needs the [monitor] extra ({missing.name} is not installed): "
            "pip install 'otel-monitor[monitor]'",
            file=sys.stderr,
        )
        return 2
    return cli_main(argv)

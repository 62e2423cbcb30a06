"""The demo as one unit: dev stack, fake providers, demo backend (API + Celery workers) and optionally the monitor."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from examples.demo_backend.launcher import DemoBackend, fake_provider_credentials
from examples.fake_providers import FakeProviders
from examples.monitor_launcher import MonitorProcess
from otel_monitor.instrument.providers import SERVICE_KEYS
from tools.devstack.stack import DevStack, StackPorts

__all__ = ["DemoRun", "demo_backend_on"]


def demo_backend_on(stack: DevStack, fakes: FakeProviders, workdir: Path, **options) -> DemoBackend:
    """A (not yet started) demo backend on ``stack`` calling the running ``fakes`` and trusting the fake YouTube's
    certificate; ``options`` go to `DemoBackend`."""
    return DemoBackend(
        stack,
        {service: fakes.base_url(service) for service in SERVICE_KEYS},
        workdir,
        ca_bundle=fakes.ca_bundle,
        **options,
    )


class DemoRun:
    """Starts the stack's ``components`` (all when none), the fake providers, the demo backend and, when
    ``monitor`` is given, the monitor it builds, in that order; stops them in reverse.

    A start that fails or is interrupted half way (Ctrl-C, a stop signal) stops what it had started. Use it as
    ``with run:`` or call ``start()``/``stop()``, not both: a second start raises instead of starting a second set
    of processes.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        ports: StackPorts | None = None,
        components: Sequence[str] = (),
        scrape_interval: str = "5s",
        fakes: FakeProviders | None = None,
        backend_options: Mapping[str, object] | None = None,
        monitor: Callable[[DemoRun], MonitorProcess] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.stack = DevStack(self.workdir / "stack", ports or StackPorts.free(), scrape_interval=scrape_interval)
        self.components = tuple(components)
        self.fakes = fakes or FakeProviders(**fake_provider_credentials())
        self.backend_options = dict(backend_options or {})
        self.build_monitor = monitor
        self.backend: DemoBackend | None = None
        self.monitor: MonitorProcess | None = None
        self._started: contextlib.ExitStack | None = None

    def start(self) -> DemoRun:
        if self._started is not None:
            raise RuntimeError("the demo is already running; use `with run:` or start(), not both")
        with contextlib.ExitStack() as started:
            # Each stop is registered before its start, so a start cut short still stops what it had begun.
            started.callback(self.stack.stop)
            self.stack.start(*self.components)
            started.callback(self.fakes.stop)
            self.fakes.start()
            self.backend = demo_backend_on(self.stack, self.fakes, self.workdir / "demo", **self.backend_options)
            started.callback(self.backend.stop)
            self.backend.start()
            if "blackbox" in self.stack.processes:  # uptime checks from outside, as in production
                self.stack.probe_from_outside({self.backend.api_service: self.backend.outside_probe_urls})
            if self.build_monitor is not None:
                self.monitor = self.build_monitor(self)
                started.callback(self.monitor.stop)
                self.monitor.start()
            self._started = started.pop_all()
        return self

    def stop(self) -> None:
        """Stops the monitor, the demo backend (flushing its telemetry), the fakes and the stack; again is a no-op."""
        started, self._started = self._started, None
        if started is not None:
            started.close()

    def __enter__(self) -> DemoRun:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

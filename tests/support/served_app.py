"""An app served by uvicorn on a free port in a thread of the test (as `otel-monitor serve`), so its services may run
on what the test injects (a clock, a check source)."""

from __future__ import annotations

import threading
import time

import uvicorn

__all__ = ["ServedApp"]


class ServedApp:
    """The app served by uvicorn on a free port, in a thread with its own event loop; ``with`` gives its base URL."""

    def __init__(self, app) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_config=None))
        self.thread = threading.Thread(target=self.server.run, name="served-monitor", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the monitor did not start"
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(60)

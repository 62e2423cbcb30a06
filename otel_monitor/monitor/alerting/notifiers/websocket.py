"""WebSocket push: an in-process hub that hands each notification's JSON to every connected client."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Protocol

from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["WebSocketChannel", "WebSocketHub", "WebSocketNotifier", "serve_subscriber"]

# Messages kept for a client that reads slower than alerts arrive; beyond this the oldest are dropped.
DEFAULT_CLIENT_BACKLOG = 256

_log = StructuredLogger("otel_monitor.alerting.websocket")


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop, backlog: int, queue: asyncio.Queue[str] | None = None) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[str] = queue if queue is not None else asyncio.Queue(maxsize=backlog)

    def offer(self, message: str) -> None:
        """Runs on the subscriber's loop: a full backlog loses its oldest message, never blocks the publisher."""
        if self.queue.full():
            self.queue.get_nowait()
            _log.warning("WebSocket client too slow; oldest alert message dropped")
        self.queue.put_nowait(message)


class WebSocketHub:
    """Fan-out to the clients connected now; a client not connected when a message is published misses it.

    Publishing is safe from any thread or event loop: each message is handed to a subscriber on its own loop.
    """

    def __init__(self, *, backlog: int = DEFAULT_CLIENT_BACKLOG) -> None:
        self._backlog = backlog
        self._subscribers: set[_Subscriber] = set()
        self._lock = threading.Lock()

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @contextlib.contextmanager
    def subscribe(self, queue: asyncio.Queue[str] | None = None) -> Iterator[asyncio.Queue[str]]:
        """A queue of the messages published while the block runs (call it on the loop that reads the queue);
        ``queue``: that one, which another hub's subscription may feed too."""
        subscriber = _Subscriber(asyncio.get_running_loop(), self._backlog, queue)
        with self._lock:
            self._subscribers.add(subscriber)
        try:
            yield subscriber.queue
        finally:
            with self._lock:
                self._subscribers.discard(subscriber)

    def publish(self, message: str) -> int:
        """Hands ``message`` to every subscriber; answers how many there were."""
        with self._lock:
            subscribers = list(self._subscribers)
        handed = 0
        for subscriber in subscribers:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the client is gone
                subscriber.loop.call_soon_threadsafe(subscriber.offer, message)
                handed += 1
        return handed


class _WebSocket(Protocol):
    async def accept(self) -> None: ...
    async def send_text(self, data: str) -> None: ...
    async def receive(self) -> Any: ...


async def _until_disconnected(websocket: _WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message.get("type") == "websocket.disconnect":
            return


async def serve_subscriber(hub: WebSocketHub, websocket: _WebSocket, *, also: Sequence[WebSocketHub] = ()) -> None:
    """Subscribes, then accepts (so nothing published after the handshake is missed), then sends the hub's
    messages (and those of the hubs ``also`` names) until the client disconnects; the client's own frames are read
    only to notice its going away."""
    with contextlib.ExitStack() as subscriptions:
        queue = subscriptions.enter_context(hub.subscribe())
        for other in also:
            subscriptions.enter_context(other.subscribe(queue))
        await websocket.accept()
        await _pump(queue, websocket)


async def _pump(queue: asyncio.Queue[str], websocket: _WebSocket) -> None:
    gone = asyncio.ensure_future(_until_disconnected(websocket))
    try:
        while True:
            next_message = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({next_message, gone}, return_when=asyncio.FIRST_COMPLETED)
            if next_message not in done:
                next_message.cancel()
                return
            try:
                await websocket.send_text(next_message.result())
            except Exception:  # the connection is gone (disconnect, reset): this client's stream ends
                return
    finally:
        gone.cancel()


class WebSocketChannel(ChannelSettings):
    """Push to the clients connected to ``/api/v1/alerts/ws`` at that moment (the others miss it)."""

    type: Literal["websocket"]


class WebSocketNotifier:
    """Publishes each notification's JSON (``Notification.to_json``) to the hub.

    Delivery succeeds once the message is handed to the hub: clients connected at that moment get it, the others
    miss it (WebSocket push is a live view; the durable record is the alert history and the other channels)."""

    def __init__(self, name: str, hub: WebSocketHub, *, scrubber: SecretScrubber = default_scrubber) -> None:
        self.name = name
        self.hub = hub
        self._scrubber = scrubber

    async def notify(self, notification: Notification) -> DeliveryResult:
        clients = self.hub.publish(self._scrubber.scrub_text(notification.to_json()))
        return DeliveryResult(ok=True, detail=f"handed to {clients} connected client(s)")

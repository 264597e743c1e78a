"""Fan-out of live messages to the WebSocket clients of this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000


class LiveHub:
    """Each client gets a bounded queue; a client too slow to keep up is disconnected."""

    def __init__(self) -> None:
        self._clients: dict[WebSocket, asyncio.Queue[dict[str, Any] | None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: list[Callable[[dict[str, Any]], None]] = []
        self.delivered = 0

    def watch(self, watcher: Callable[[dict[str, Any]], None]) -> None:
        """Also hand every message to ``watcher`` (on the event loop, before the clients)."""
        self._watchers.append(watcher)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def register(self, websocket: WebSocket) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._clients[websocket] = queue
        return queue

    def unregister(self, websocket: WebSocket) -> None:
        self._clients.pop(websocket, None)

    def deliver(self, messages: list[dict[str, Any]]) -> None:
        """Thread-safe: called from request threads and the PostgreSQL listener thread, with
        the messages of one transaction (one wake-up of the event loop for all of them)."""
        loop = self._loop
        if not messages or loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._fan_out, messages)

    def _fan_out(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            for watcher in self._watchers:
                try:
                    watcher(message)
                except Exception:
                    log.exception("live watcher failed")
            for websocket, queue in list(self._clients.items()):
                try:
                    queue.put_nowait(message)
                except asyncio.QueueFull:
                    log.warning("live client too slow, disconnecting")
                    self._clients.pop(websocket, None)
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)  # the sender loop closes the socket
            self.delivered += 1

    async def close_all(self, code: int = 1001) -> None:
        """Graceful shutdown: tell every client we are going away (1001)."""
        for websocket in list(self._clients):
            with contextlib.suppress(RuntimeError, OSError):
                await websocket.close(code=code, reason="server shutting down")
            self.unregister(websocket)

"""One write per response: uvicorn's HTTP protocol with its writes of one loop turn joined.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and the body in a second write when it sends
``http.response.body``. A central killed between the two (kill -9, power loss) leaves the
load balancer with a header and no body: nginx has passed the header on to the client
already and can no longer try the other central, so the client sees a broken answer instead
of a slow one (tests/loadbalancer caught it once in ~500 requests). Both writes happen in the
same turn of the event loop, so holding a turn's writes and sending them as one closes that
window: the kernel gets the whole answer in one call, or nothing.

A streamed body does not pile up: once more than ``FLUSH_BYTES`` wait, they go at once.
WebSocket upgrades get the plain transport (the WebSocket protocol does its own framing).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Bytes held at most before a write goes out within the same turn (a streamed download).
FLUSH_BYTES = 64 * 1024


class OneWriteTransport:
    """An asyncio transport whose writes of one loop turn reach the socket as one write.

    Everything but ``write``, ``close`` and ``abort`` goes straight to the wrapped transport.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = transport
        self._loop = loop
        self._parts: list[bytes] = []
        self._held = 0
        # What uvicorn calls on every request, bound once (not looked up through __getattr__).
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._parts:
            self._loop.call_soon(self.flush)
        # uvicorn writes bytes; anything else may change after the call, so it is copied
        self._parts.append(data if type(data) is bytes else bytes(data))
        self._held += len(data)
        if self._held > FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Send what this turn wrote, as one write (a no-op when nothing waits)."""
        if not self._parts:
            return
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts = []
        self._held = 0
        if not self.inner.is_closing():
            self.inner.write(data)

    def get_write_buffer_size(self) -> int:
        return self._held + self.inner.get_write_buffer_size()

    def close(self) -> None:
        self.flush()  # a response followed by "connection: close" still goes out whole
        self.inner.close()

    def abort(self) -> None:
        self._parts = []
        self._held = 0
        self.inner.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each response in one go (module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped = OneWriteTransport(transport, asyncio.get_running_loop())
        super().connection_made(wrapped)  # type: ignore[arg-type]

    def handle_websocket_upgrade(self) -> None:
        transport = self.transport
        if isinstance(transport, OneWriteTransport):
            transport.flush()
            self.transport = transport.inner
        super().handle_websocket_upgrade()

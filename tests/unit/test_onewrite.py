"""A turn's writes leave as one (app/central/onewrite.py), in order, whole, and bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from hypothesis import given
from hypothesis import strategies as st

from app.central.onewrite import FLUSH_BYTES, OneWriteTransport


class Recorder(asyncio.Transport):
    """What the socket would have been given, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def one_turn(parts: list[bytes]) -> Recorder:
    inner = Recorder()
    transport = OneWriteTransport(inner, asyncio.get_running_loop())
    for part in parts:
        transport.write(part)
    await asyncio.sleep(0)  # the turn ends
    await asyncio.sleep(0)
    return inner


@given(st.lists(st.binary(max_size=3 * FLUSH_BYTES // 4), max_size=6))
def test_a_turns_writes_arrive_in_order_whole_and_in_few_writes(parts: list[bytes]) -> None:
    inner = asyncio.run(one_turn(parts))
    assert b"".join(inner.writes) == b"".join(parts)
    total = sum(map(len, parts))
    # one write unless more than FLUSH_BYTES waited; never a write of nothing
    assert len(inner.writes) <= 1 + total // FLUSH_BYTES
    assert all(inner.writes)


def test_header_and_body_of_one_answer_are_one_write() -> None:
    inner = asyncio.run(one_turn([b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", b"{}"]))
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_close_sends_what_waits_first_and_abort_drops_it() -> None:
    async def run() -> tuple[Recorder, Recorder]:
        loop = asyncio.get_running_loop()
        closed, aborted = Recorder(), Recorder()
        for inner, end in ((closed, "close"), (aborted, "abort")):
            transport = OneWriteTransport(inner, loop)
            transport.write(b"head")
            transport.write(b"body")
            getattr(transport, end)()
        await asyncio.sleep(0)
        return closed, aborted

    closed, aborted = asyncio.run(run())
    assert closed.writes == [b"headbody"] and closed.closed
    assert aborted.writes == [] and aborted.aborted


def test_central_answers_through_the_one_write_protocol() -> None:
    """The protocol under a real uvicorn: answers arrive whole, keep-alive works."""
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from app.central.onewrite import OneWriteHttpProtocol
    from support.pg import free_port

    async def small(_: object) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def big(_: object) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b"x" * FLUSH_BYTES

        return StreamingResponse(chunks())

    app = Starlette(routes=[Route("/small", small), Route("/big", big)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http=OneWriteHttpProtocol, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(200):
                try:
                    client.get("/small")
                    break
                except httpx.TransportError:
                    threading.Event().wait(0.05)
            for _ in range(5):
                assert client.get("/small").json() == {"ok": True}
            assert len(client.get("/big").content) == 8 * FLUSH_BYTES
    finally:
        server.should_exit = True
        thread.join(10)

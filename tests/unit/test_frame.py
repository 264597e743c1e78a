"""``frame.HttpFrame``: the body limit (declared or streamed), the security headers and the
request metrics, around a bare ASGI app (the request id has tests/integration/test_request_id)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from app.central.frame import SECURITY_HEADERS, HttpFrame
from app.central.metrics import REQUESTS

LIMIT = 1000


def _run(
    chunks: list[bytes], *, declared: int | None, own_headers: list[tuple[bytes, bytes]]
) -> tuple[list[Message], int]:
    """One POST whose body comes in ``chunks``; the app reads all of it and answers 200.
    Returns what was sent and how many body bytes the app saw."""
    seen = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal seen
        while True:
            message = await receive()
            seen += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": own_headers})
        await send({"type": "http.response.body", "body": b"ok"})

    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        return pending.pop(0)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    asyncio.run(HttpFrame(app, max_bytes=LIMIT)(scope, receive, send))
    return sent, seen


def _count(status: str) -> float:
    return float(REQUESTS.labels("unmatched", "POST", status)._value.get())


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 600), min_size=1, max_size=6),
    declare=st.booleans(),
    own=st.sampled_from([[], [(b"x-frame-options", b"SAMEORIGIN")]]),
)
def test_a_body_over_the_limit_is_413_declared_or_streamed_and_counted(
    sizes: list[int], declare: bool, own: list[tuple[bytes, bytes]]
) -> None:
    chunks = [b"a" * n for n in sizes]
    total = sum(sizes)
    before = {s: _count(s) for s in ("200", "413")}
    sent, seen = _run(chunks, declared=total if declare else None, own_headers=own)
    start = sent[0]
    status = "413" if total > LIMIT else "200"
    assert start["status"] == int(status)
    assert _count(status) == before[status] + 1, "every answer is counted once"
    headers = start["headers"]
    names = [name for name, _ in headers]
    answered_by_app = total <= LIMIT
    for name, value in SECURITY_HEADERS:
        assert names.count(name) == 1, name  # never twice
        if not (answered_by_app and name in dict(own)):
            assert (name, value) in headers
    if answered_by_app:
        assert dict(own).items() <= dict(headers).items(), "the app's own header is kept"
    assert names.count(b"x-request-id") == 1
    if total > LIMIT:
        body = json.loads(sent[1]["body"])
        assert body["detail"][0]["type"] == "body_too_large"
        assert seen <= LIMIT + 600, "the app stops being fed once the limit is passed"
        if declare:
            assert seen == 0, "a declared oversize body is refused before it is read"
    else:
        assert seen == total and sent[1]["body"] == b"ok"

"""``X-Request-ID``: a sane one is kept, anything else replaced; answered on every response
and written into every log line of its request (app/central/logs.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import string
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from app.central.frame import HttpFrame
from app.central.logs import (
    MAX_REQUEST_ID_CHARS,
    REQUEST_ID,
    RequestIdFilter,
    accepted_request_id,
)
from support.logs import json_lines
from tests.conftest import World, event_body

SAFE = string.ascii_letters + string.digits + "._:-"
GENERATED = re.compile(r"[0-9a-f]{32}")
sane_ids = st.text(alphabet=SAFE, min_size=1, max_size=MAX_REQUEST_ID_CHARS)
log = logging.getLogger("tests.request_id")


def _is_sane(value: bytes) -> bool:
    return 0 < len(value) <= MAX_REQUEST_ID_CHARS and all(chr(b) in SAFE for b in value)


@given(st.binary(max_size=300) | sane_ids.map(str.encode))
@example(b"abc\r\nSet-Cookie: x=1")
@example(b'"}, "level": "critical')
@example(b"a" * (MAX_REQUEST_ID_CHARS + 1))
@example(b"caf\xc3\xa9")
@example(b"")
def test_only_a_sane_id_is_accepted(value: bytes) -> None:
    accepted = accepted_request_id(value)
    if _is_sane(value):
        assert accepted == value.decode()
    else:
        assert accepted is None


def _answer(header: bytes | None) -> tuple[dict[bytes, bytes], list[dict[str, Any]]]:
    """Runs one request through ``HttpFrame`` around an app that logs one line; returns the
    response headers and the log lines of the request."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        log.warning("handling")
        await asyncio.sleep(0)
        log.warning("still handling")
        await send({"type": "http.response.start", "status": 204, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"host", b"central")]
    if header is not None:
        headers.append((b"x-request-id", header))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    with json_lines(service="parking-central", filters=[RequestIdFilter()]) as lines:
        asyncio.run(HttpFrame(app, max_bytes=1000)(scope, receive, send))
        log.warning("after the request")
    answered = dict(sent[0]["headers"])
    assert answered[b"x-a"] == b"1", "the app's own headers stay"
    assert [line["msg"] for line in lines.lines][-1] == "after the request"
    assert "request_id" not in lines.lines[-1], "the id does not outlive its request"
    return answered, lines.lines[:-1]


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.none(), st.binary(max_size=300), sane_ids.map(str.encode)))
@example(b"abc\r\nSet-Cookie: x=1")
@example(b"a" * 10_000)
def test_the_id_is_kept_or_made_answered_and_in_every_line_of_the_request(
    header: bytes | None,
) -> None:
    answered, lines = _answer(header)
    request_id = answered[b"x-request-id"]
    if header is not None and _is_sane(header):
        assert request_id == header
    else:
        assert GENERATED.fullmatch(request_id.decode()), request_id
    assert [line["msg"] for line in lines] == ["handling", "still handling"]
    assert {line["request_id"] for line in lines} == {request_id.decode()}
    assert REQUEST_ID.get() is None


def test_two_requests_without_an_id_get_two_ids() -> None:
    first, _ = _answer(None)
    second, _ = _answer(None)
    assert first[b"x-request-id"] != second[b"x-request-id"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=st.none() | sane_ids | st.text(alphabet=SAFE + " /+=\"'{}", max_size=200))
def test_central_answers_every_response_with_the_request_id(
    client: TestClient, header: str | None
) -> None:
    sent = {} if header is None else {"X-Request-ID": header}
    for path in ("/api/health/live", "/api/v1/sessions", "/no/such/page"):
        answer = client.get(path, headers=sent)
        request_id = answer.headers["x-request-id"]
        if header is not None and _is_sane(header.encode()):
            assert request_id == header, path
        else:
            assert GENERATED.fullmatch(request_id), (path, request_id)
    too_big = client.post(
        "/api/v1/events", content=b"x" * 3_000_000, headers={**sent, "X-API-Key": "k"}
    )
    assert too_big.status_code == 413
    assert "x-request-id" in too_big.headers


def test_an_ingest_line_carries_the_request_id(client: TestClient, world: World) -> None:
    body = event_body("lane-in", "51F-123.45")
    with json_lines(service="parking-central", filters=[RequestIdFilter()]) as lines:
        answer = client.post(
            "/api/v1/events",
            json=body,
            headers={"X-API-Key": world.entry_key, "X-Request-ID": "edge-retry-7"},
        )
        unnamed = client.post("/api/v1/events", json=body, headers={"X-API-Key": world.entry_key})
    assert answer.status_code == unnamed.status_code == 200
    assert answer.headers["x-request-id"] == "edge-retry-7"
    about = lines.about(body["event_id"])
    assert [(line["outcome"], line["request_id"]) for line in about] == [
        ("stored", "edge-retry-7"),
        ("replayed", unnamed.headers["x-request-id"]),
    ]

"""The test Sentry (support/sentry_receiver.py) reads envelopes as Sentry does: items with
and without a length, gzip and deflate bodies."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import httpx
import pytest

from support.sentry_receiver import SentryReceiver, decode_body, parse_envelope

EVENT = {"event_id": "a" * 32, "message": "hi\nthere", "level": "error"}


def _envelope() -> bytes:
    event = json.dumps(EVENT).encode()
    attachment = b"line one\nline two"
    return b"\n".join(
        [
            json.dumps({"event_id": "a" * 32}).encode(),
            json.dumps({"type": "event", "length": len(event)}).encode(),
            event,
            json.dumps({"type": "attachment", "length": len(attachment)}).encode(),
            attachment,
            json.dumps({"type": "client_report"}).encode(),
            b'{"discarded_events": []}',
        ]
    )


def test_items_with_and_without_length() -> None:
    envelope = parse_envelope(_envelope())
    assert [item.type for item in envelope.items] == ["event", "attachment", "client_report"]
    assert envelope.items[0].json() == EVENT
    assert envelope.items[1].payload == b"line one\nline two"


def _raw_deflate(body: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(body) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
        (None, bytes),
    ],
    ids=["gzip", "deflate", "raw-deflate", "identity"],
)
def test_encodings(encoding: str | None, encode: Callable[[bytes], bytes]) -> None:
    assert decode_body(encode(_envelope()), encoding) == _envelope()


def test_the_server_keeps_events_posted_to_the_envelope_endpoint() -> None:
    with SentryReceiver(project="7") as sentry:
        url = sentry.dsn.replace("publickey@", "").rsplit("/", 1)[0] + "/api/7/envelope/"
        answer = httpx.post(
            url,
            content=gzip.compress(_envelope()),
            headers={"Content-Encoding": "gzip", "X-Sentry-Auth": "Sentry sentry_key=publickey"},
        )
        assert answer.status_code == 200
        assert httpx.post(url.replace("envelope", "store"), content=b"{}").status_code == 404
        assert sentry.wait_for_event(timeout=1) == EVENT
        assert sentry.envelopes[0].project == "7"
        assert sentry.events == [EVENT]

"""A tiny Sentry on loopback: speaks the envelope protocol the real SDK sends and keeps what
arrives, so tests check what Sentry would get (exception, release, environment, tags).

``POST /api/<project>/envelope/``, the body gzip-, deflate- or (with the brotli module) br-
encoded per Content-Encoding: an envelope header line, then for each item an item header line
and its payload (``length`` bytes when the header gives one, else up to the next newline).
See https://develop.sentry.dev/sdk/data-model/envelopes/.

    with SentryReceiver() as sentry:
        sentry_sdk.init(dsn=sentry.dsn)
        ...
        event = sentry.wait_for_event()
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

ENVELOPE_PATH = re.compile(r"^/api/(?P<project>[^/]+)/envelope/?(\?.*)?$")


@dataclass(frozen=True)
class Item:
    header: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.header.get("type", ""))

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class Envelope:
    project: str
    auth: str  # the X-Sentry-Auth header (sentry_key=<public key>, ...)
    header: dict[str, Any]
    items: list[Item] = field(default_factory=list)


def decode_body(body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)  # zlib-wrapped, as HTTP's deflate should be
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some clients send
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]  # only where the SDK itself has it

        return bytes(brotli.decompress(body))
    if encoding == "identity":
        return body
    raise ValueError(f"unknown Content-Encoding {encoding!r}")


def parse_envelope(body: bytes, *, project: str = "", auth: str = "") -> Envelope:
    """One envelope: header line, then (item header, payload) pairs."""
    first, _, rest = body.partition(b"\n")
    envelope = Envelope(project=project, auth=auth, header=json.loads(first))
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        header = json.loads(line)
        length = header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        envelope.items.append(Item(header=header, payload=payload))
    return envelope


class SentryReceiver:
    """A threaded HTTP server on ``host`` (127.0.0.1) and ``port`` (0: a free one) that keeps
    every envelope it gets."""

    def __init__(
        self,
        project: str = "1",
        public_key: str = "publickey",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.envelopes: list[Envelope] = []
        self.errors: list[str] = []  # bodies it could not parse (the test should fail on them)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                match = ENVELOPE_PATH.match(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if match is None:
                    self.send_error(404)
                    return
                try:
                    envelope = parse_envelope(
                        decode_body(body, self.headers.get("Content-Encoding")),
                        project=match["project"],
                        auth=self.headers.get("X-Sentry-Auth", ""),
                    )
                except (ValueError, OSError, zlib.error) as exc:
                    with receiver._lock:
                        receiver.errors.append(f"{self.path}: {exc!r}")
                    self.send_error(400)
                    return
                with receiver._arrived:
                    receiver.envelopes.append(envelope)
                    receiver._arrived.notify_all()
                answer = json.dumps({"id": envelope.header.get("event_id")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.dsn = f"http://{public_key}@{host}:{self._server.server_address[1]}/{project}"

    @property
    def events(self) -> list[dict[str, Any]]:
        """The error events (items of type ``event``) in arrival order."""
        with self._lock:
            return [
                item.json()
                for envelope in self.envelopes
                for item in envelope.items
                if item.type == "event"
            ]

    def wait_for_event(self, timeout: float = 10.0) -> dict[str, Any]:
        """The first error event, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for envelope in self.envelopes:
                    for item in envelope.items:
                        if item.type == "event":
                            event: dict[str, Any] = item.json()
                            return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no event reached the receiver in {timeout} s "
                        f"({len(self.envelopes)} envelopes, errors {self.errors})"
                    )
                self._arrived.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SentryReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def reset_sentry() -> None:
    """Undo ``sentry_sdk.init``: no client (events go nowhere) and no tags left on the global
    scope, so later tests send nothing (sentry-sdk 2.x, where init binds the global scope)."""
    import sentry_sdk

    sentry_sdk.get_client().close(timeout=2)
    scope = sentry_sdk.get_global_scope()
    scope.set_client(None)
    scope.clear()

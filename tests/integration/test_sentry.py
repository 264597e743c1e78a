"""Unhandled errors reach Sentry: the real SDK's envelope arrives at a local endpoint."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from fastapi.testclient import TestClient

from app.central.main import create_app
from tests.conftest import make_settings


class Envelopes:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.arrived = threading.Event()


@pytest.fixture
def sentry_endpoint() -> Iterator[tuple[str, Envelopes]]:
    received = Envelopes()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            for line in body.splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict) and "exception" in item:
                    received.items.append(item)
                    received.arrived.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/42", received
    server.shutdown()


def test_unhandled_error_is_reported_with_environment_and_release(
    sentry_endpoint: tuple[str, Envelopes], fresh_sqlite_url: str, tmp_path: Path
) -> None:
    dsn, received = sentry_endpoint
    settings = make_settings(
        tmp_path,
        fresh_sqlite_url,
        sentry_dsn=dsn,
        environment="lab-test",
        release="parking-central@9.9.9",
    )
    app = create_app(settings, run_duties=False)

    def boom() -> None:
        raise RuntimeError("gate controller exploded")

    app.add_api_route("/boom", boom)
    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the dashboard's mount at /

    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/boom").status_code == 500
        sentry_sdk.flush(timeout=5)
        assert received.arrived.wait(10), "no error event reached the Sentry endpoint"
        event = received.items[0]
        assert event["environment"] == "lab-test"
        assert event["release"] == "parking-central@9.9.9"
        values = event["exception"]["values"]
        assert values[-1]["type"] == "RuntimeError"
        assert values[-1]["value"] == "gate controller exploded"
    finally:
        sentry_sdk.init(dsn=None)  # do not leak the client into other tests

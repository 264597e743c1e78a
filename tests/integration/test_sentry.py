"""Unhandled errors reach Sentry: the real SDK's envelope arrives at a local endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk
from fastapi.testclient import TestClient

from app.central.db import Database
from app.central.main import create_app
from support.sentry_receiver import SentryReceiver, reset_sentry
from tests.conftest import build_world, event_body, make_settings


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    with SentryReceiver() as received:
        try:
            yield received
        finally:
            reset_sentry()  # do not leak the client into other tests


def test_unhandled_error_is_reported_with_environment_and_release(
    sentry: SentryReceiver, fresh_sqlite_url: str, tmp_path: Path
) -> None:
    dsn, received = sentry.dsn, sentry
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

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    sentry_sdk.flush(timeout=5)
    event = received.wait_for_event(10)
    assert event["environment"] == "lab-test"
    assert event["release"] == "parking-central@9.9.9"
    values = event["exception"]["values"]
    assert values[-1]["type"] == "RuntimeError"
    assert values[-1]["value"] == "gate controller exploded"


def test_an_error_on_the_ingest_path_is_answered_500_and_reported_both_ways(
    sentry: SentryReceiver, fresh_sqlite_url: str, tmp_path: Path
) -> None:
    """POST /api/v1/events enters the request frame and the fast path before Starlette's outer
    layers (main.CentralApp): an error there must still be a 500 with the frame's headers and
    reach Sentry, as an error on the route (a cold camera-key cache sends the first request
    there) does through Sentry's own integration."""
    settings = make_settings(tmp_path, fresh_sqlite_url, sentry_dsn=sentry.dsn)
    database = Database(settings)
    with database.session() as session:
        world = build_world(session)
    app = create_app(settings, database=database, run_duties=False)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the combiner fell over")

    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.ingest.submit = broken
        headers = {"X-API-Key": world.entry_key, "X-Request-ID": "req-front-1"}
        for _ in range(2):  # the route (the key not cached yet), then the fast path
            answer = client.post(
                "/api/v1/events", json=event_body("lane-in", "51A12345"), headers=headers
            )
            assert answer.status_code == 500
            assert answer.headers["x-request-id"] == "req-front-1"
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert app.state.parking.camera_keys.get(world.entry_key) is not None, "cache warmed"
    sentry_sdk.flush(timeout=5)
    deadline = time.monotonic() + 10
    while len(sentry.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # a third (the same error reported twice) would have arrived by now
    errors = [e for e in sentry.events if "exception" in e]
    assert len(errors) == 2, "one report per failed request"
    for event in errors:
        assert event["exception"]["values"][-1]["value"] == "the combiner fell over"
    database.dispose()

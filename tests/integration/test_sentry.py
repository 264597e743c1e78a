"""Unhandled errors reach Sentry: the real SDK's envelope arrives at a local endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk
from fastapi.testclient import TestClient

from app.central.main import create_app
from support.sentry_receiver import SentryReceiver, reset_sentry
from tests.conftest import make_settings


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

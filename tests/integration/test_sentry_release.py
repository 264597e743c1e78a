"""Central reports to Sentry with the release and environment it was given (roles/central
sets PARKING_RELEASE to the release it installed): the real SDK's envelope reaches a local
receiver that speaks Sentry's protocol (support/sentry_receiver.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk
from fastapi.testclient import TestClient

from app.central.main import create_app
from app.central.settings import Settings, default_release
from support.sentry_receiver import SentryReceiver, reset_sentry
from tests.conftest import make_settings

RELEASE = "parking-central@0.1.0+0123456789abcdef"


class BarrierJammed(RuntimeError):
    pass


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    with SentryReceiver() as receiver:
        try:
            yield receiver
        finally:
            reset_sentry()


def test_a_500_reaches_sentry_with_release_and_environment(
    sentry: SentryReceiver, fresh_sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path,
        fresh_sqlite_url,
        sentry_dsn=sentry.dsn,
        environment="staging-test",
        release=RELEASE,
        sentry_traces_sample_rate=0.0,
    )
    app = create_app(settings, run_duties=False)

    def boom() -> None:
        raise BarrierJammed("barrier motor stalled")

    app.add_api_route("/boom", boom)
    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the dashboard's mount at /

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    sentry_sdk.flush(timeout=5)

    event = sentry.wait_for_event()
    assert event["release"] == RELEASE
    assert event["environment"] == "staging-test"
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "BarrierJammed"
    assert exception["value"] == "barrier motor stalled"
    assert sentry.envelopes[0].project == "1"
    assert "sentry_key=publickey" in sentry.envelopes[0].auth
    assert sentry.errors == []


def test_release_defaults_to_the_package_version_and_the_environment_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PARKING_RELEASE", raising=False)
    monkeypatch.delenv("PARKING_SENTRY_TRACES_SAMPLE_RATE", raising=False)
    settings = Settings()
    assert settings.release == default_release()
    assert settings.release.startswith("parking-central@")
    assert settings.sentry_traces_sample_rate == 0.0

    monkeypatch.setenv("PARKING_RELEASE", RELEASE)
    monkeypatch.setenv("PARKING_SENTRY_TRACES_SAMPLE_RATE", "0.25")
    settings = Settings()
    assert settings.release == RELEASE
    assert settings.sentry_traces_sample_rate == 0.25


def test_traces_sample_rate_is_a_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARKING_SENTRY_TRACES_SAMPLE_RATE", "1.5")
    with pytest.raises(ValueError, match="sentry_traces_sample_rate"):
        Settings()


def test_default_release_names_an_installed_distribution() -> None:
    assert default_release("sentry-sdk") == f"sentry-sdk@{sentry_sdk.VERSION}"


def test_sentry_test_command_sends_one_error_with_release_and_prints_its_id(
    sentry: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`parking-central sentry-test` (after a deploy: do errors reach on-call?) reports as the
    server does: its DSN, release and environment from the same settings."""
    from app.central import cli
    from app.central.settings import get_settings

    monkeypatch.setenv("PARKING_SENTRY_DSN", sentry.dsn)
    monkeypatch.setenv("PARKING_RELEASE", RELEASE)
    monkeypatch.setenv("PARKING_ENVIRONMENT", "lab")
    monkeypatch.setenv("PARKING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert cli.main(["sentry-test"]) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        event = sentry.wait_for_event()
        assert event["event_id"] == printed["event_id"]
        assert event["release"] == RELEASE == printed["release"]
        assert event["environment"] == "lab"
        assert event["exception"]["values"][-1]["type"] == "SentryTestError"

        monkeypatch.delenv("PARKING_SENTRY_DSN")
        get_settings.cache_clear()
        assert cli.main(["sentry-test"]) == 2
        assert "no Sentry DSN" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()

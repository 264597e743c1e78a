"""The edge's error reports carry lane, lot, environment and release: the real SDK's envelope
reaches a local receiver that speaks Sentry's protocol (support/sentry_receiver.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk

from app.edge import cli
from app.edge.config import ConfigError, SentryConfig, parse_config
from app.edge.errors import DSN_ENV, default_release, init_error_reporting
from support.sentry_receiver import SentryReceiver, reset_sentry
from tests.edge.helpers import edge_config, edge_toml

RELEASE = "parking-edge@0.1.0+fedcba9876543210"


class RelayBoardMissing(RuntimeError):
    pass


@pytest.fixture
def sentry(monkeypatch: pytest.MonkeyPatch) -> Iterator[SentryReceiver]:
    monkeypatch.delenv(DSN_ENV, raising=False)
    with SentryReceiver() as receiver:
        try:
            yield receiver
        finally:
            reset_sentry()


def _report_from(thread_name: str | None) -> None:
    def fail() -> None:
        try:
            raise RelayBoardMissing("relay board not found")
        except RelayBoardMissing as exc:
            sentry_sdk.capture_exception(exc)

    if thread_name is None:
        fail()
        return
    worker = threading.Thread(target=fail, name=thread_name)
    worker.start()
    worker.join()


@pytest.mark.parametrize("thread_name", [None, "uploader"], ids=["main", "worker-thread"])
def test_an_error_is_tagged_with_lane_lot_environment_and_release(
    sentry: SentryReceiver, thread_name: str | None
) -> None:
    config = SentryConfig(dsn=sentry.dsn, environment="staging", release=RELEASE)
    assert init_error_reporting(config, camera_id="gate-7-in", lot="north") is True

    _report_from(thread_name)
    sentry_sdk.flush(timeout=5)

    event = sentry.wait_for_event()
    assert event["release"] == RELEASE
    assert event["environment"] == "staging"
    assert event["tags"]["lane"] == "gate-7-in"
    assert event["tags"]["lot"] == "north"
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "RelayBoardMissing"
    assert exception["value"] == "relay board not found"
    assert sentry.errors == []


def test_the_release_defaults_to_the_package_version(sentry: SentryReceiver) -> None:
    init_error_reporting(SentryConfig(dsn=sentry.dsn), camera_id="gate-1")
    sentry_sdk.capture_message("hello", level="error")
    sentry_sdk.flush(timeout=5)

    event = sentry.wait_for_event()
    assert event["release"] == default_release()
    assert event["release"].startswith("parking-edge@")
    assert event["environment"] == "production"
    assert event["tags"]["lane"] == "gate-1"
    assert "lot" not in event["tags"]


def test_the_dsn_from_the_environment_wins(
    sentry: SentryReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DSN_ENV, sentry.dsn)
    config = SentryConfig(dsn="http://other@127.0.0.1:9/2", traces_sample_rate=0.5)
    assert init_error_reporting(config, camera_id="gate-2", lot="main") is True
    assert sentry_sdk.get_client().options["traces_sample_rate"] == 0.5
    sentry_sdk.capture_message("from the env DSN", level="error")
    sentry_sdk.flush(timeout=5)
    assert sentry.wait_for_event()["tags"]["lot"] == "main"


def test_the_config_names_the_lot_and_the_sampling() -> None:
    raw: dict[str, object] = {
        **edge_config(
            camera={"id": "gate-1", "api_key": "k" * 32, "lot": "north"},
            central={"url": "https://vip.example"},
            sentry={"environment": "lab", "traces_sample_rate": 0.1},
        )
    }
    config = parse_config(raw)
    assert config.camera.lot == "north"
    assert config.sentry.traces_sample_rate == 0.1
    raw["sentry"] = {"traces_sample_rate": 2}
    with pytest.raises(ConfigError, match=r"sentry\.traces_sample_rate"):
        parse_config(raw)


def test_sentry_test_command_sends_one_tagged_error_and_prints_its_id(
    sentry: SentryReceiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`parking-edge sentry-test` (do errors reach on-call after a deploy?) reports as the agent."""
    config = tmp_path / "edge.toml"
    config.write_text(
        edge_toml(
            edge_config(
                camera={"lot": "north"},
                sentry={"dsn": sentry.dsn, "environment": "lab", "release": RELEASE},
            )
        )
    )
    assert cli.main(["sentry-test", "--config", str(config)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    event = sentry.wait_for_event()
    assert event["event_id"] == printed["event_id"]
    assert event["release"] == RELEASE and event["environment"] == "lab"
    assert event["tags"]["lane"] == "edge-in" and event["tags"]["lot"] == "north"
    assert event["exception"]["values"][-1]["type"] == "SentryTestError"


def test_sentry_test_command_without_a_dsn_fails(
    sentry: SentryReceiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(edge_toml(edge_config()))
    assert cli.main(["sentry-test", "--config", str(config)]) == 2
    assert "no Sentry DSN" in capsys.readouterr().err
    assert sentry.envelopes == []

"""The edge reports an unhandled error to Sentry: the real SDK's envelope reaches a local
endpoint, tagged with environment, release and camera."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from app.edge.config import SentryConfig
from app.edge.errors import init_error_reporting
from support.sentry_receiver import SentryReceiver


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    with SentryReceiver() as received:
        yield received


def test_unhandled_error_reaches_sentry_with_tags(sentry: SentryReceiver) -> None:
    dsn = sentry.dsn
    program = (
        "from app.edge.config import SentryConfig\n"
        "from app.edge.errors import init_error_reporting\n"
        f"config = SentryConfig(dsn={dsn!r}, environment='lab')\n"
        "init_error_reporting(config, camera_id='gate-7', lot='north')\n"
        "raise RuntimeError('relay board not found')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    try:
        event = sentry.wait_for_event(10)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; stderr: {done.stderr[-500:]}") from None
    assert event["environment"] == "lab"
    assert event["release"].startswith("parking-edge@")
    assert event["tags"]["camera_id"] == "gate-7"
    assert event["tags"]["lane"] == "gate-7"
    assert event["tags"]["lot"] == "north"
    assert event["exception"]["values"][-1]["value"] == "relay board not found"


def test_no_dsn_means_no_reporting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARKING_EDGE_SENTRY_DSN", raising=False)
    assert init_error_reporting(SentryConfig(), camera_id="gate-1") is False

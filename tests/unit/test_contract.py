"""The wire contract refuses what central must never store."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from app.contract import CameraHeartbeat, PlateEvent, normalize_plate


def event(**overrides: object) -> PlateEvent:
    values: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "camera_id": "gate-1",
        "captured_at": datetime.now(UTC),
        "plate": "51F-123.45",
        "confidence": 0.9,
    }
    values.update(overrides)
    return PlateEvent.model_validate(values)


def failing_field(**overrides: object) -> str:
    with pytest.raises(ValidationError) as info:
        event(**overrides)
    return str(info.value.errors()[0]["loc"][0])


@pytest.mark.parametrize(
    ("display", "normalized"),
    [
        ("51F-123.45", "51F12345"),
        ("59-x1 123.45", "59X112345"),
        ("ĐA 12-34", "DA1234"),
        ("30A-12345", "30A12345"),
    ],
)
def test_normalize_plate(display: str, normalized: str) -> None:
    assert normalize_plate(display) == normalized


def test_plate_is_upper_cased_and_kept_in_display_form() -> None:
    assert event(plate="59-x1 123.45").plate == "59-X1 123.45"


@pytest.mark.parametrize("bad", ["", "A", "<b>12</b>", "51F--", "A" * 17, "12;DROP", "-123"])
def test_bad_plates_are_refused(bad: str) -> None:
    assert failing_field(plate=bad) == "plate"


def test_confidence_must_be_a_probability() -> None:
    assert failing_field(confidence=1.5) == "confidence"


def test_unknown_fields_are_refused() -> None:
    assert failing_field(colour="red") == "colour"


def test_timestamp_must_be_aware_and_not_in_the_future() -> None:
    assert failing_field(captured_at=datetime.now()) == "captured_at"
    assert failing_field(captured_at=datetime.now(UTC) + timedelta(minutes=6)) == "captured_at"
    assert event(captured_at=datetime.now(UTC) + timedelta(minutes=1)).captured_at.tzinfo


def test_snapshot_must_be_base64_jpeg_within_limit() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 10 + b"\xff\xd9"
    assert event(snapshot_b64=base64.b64encode(jpeg).decode()).snapshot_bytes() == jpeg
    assert failing_field(snapshot_b64="***") == "snapshot_b64"
    assert failing_field(snapshot_b64=base64.b64encode(b"GIF89a").decode()) == "snapshot_b64"
    huge = base64.b64encode(b"\xff\xd8\xff" + bytes(600_000) + b"\xff\xd9").decode()
    assert failing_field(snapshot_b64=huge) == "snapshot_b64"


def test_heartbeat_cannot_deliver_more_than_it_captured() -> None:
    with pytest.raises(ValidationError):
        CameraHeartbeat(sent_at=datetime.now(UTC), captured_total=3, delivered_total=4)

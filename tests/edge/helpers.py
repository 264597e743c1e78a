"""Small builders shared by the edge tests."""

from __future__ import annotations

from datetime import UTC, datetime

from app.contract import PlateEvent
from app.edge.ids import EventIdFactory

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16 + b"\xff\xd9"
_ids = EventIdFactory()


def jpeg(size: int) -> bytes:
    """A byte string central would take as a JPEG, ``size`` bytes long."""
    return b"\xff\xd8\xff\xe0" + b"\x11" * (size - 6) + b"\xff\xd9"


def make_event(camera_id: str = "edge-in", plate: str = "51F-123.45") -> PlateEvent:
    now = datetime.now(UTC)
    return PlateEvent(
        event_id=_ids.new(now),
        camera_id=camera_id,
        captured_at=now,
        plate=plate,
        confidence=0.93,
    )

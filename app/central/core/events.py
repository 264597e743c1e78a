from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.types import UTCDateTime


class PlateEvent(Base):
    """Every event accepted from a camera; ``event_id`` is the idempotency key.

    ``ack`` is the exact answer given the first time, replayed for every retry.
    """

    __tablename__ = "plate_events"
    __table_args__ = (Index("ix_plate_events_camera_captured", "camera_id", "captured_at"),)

    event_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"))
    direction: Mapped[str] = mapped_column(String(8))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    plate: Mapped[str] = mapped_column(String(20))
    plate_normalized: Mapped[str] = mapped_column(String(16), index=True)
    confidence: Mapped[float]
    vehicle_type: Mapped[str] = mapped_column(String(16))
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    session_id: Mapped[int | None] = mapped_column(default=None)
    ack: Mapped[dict[str, Any]] = mapped_column(JSON)
    has_snapshot: Mapped[bool] = mapped_column(default=False)


class Snapshot(Base):
    """JPEG kept apart from the event row so retention can drop it and keep the event."""

    __tablename__ = "snapshots"

    event_id: Mapped[UUID] = mapped_column(
        Uuid, ForeignKey("plate_events.event_id", ondelete="CASCADE"), primary_key=True
    )
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

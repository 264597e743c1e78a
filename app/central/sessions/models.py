from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.types import UTCDateTime, plate_key_default


class ParkingSession(Base):
    """One vehicle's stay in a lot, from its entry event to its exit event."""

    __tablename__ = "parking_sessions"
    __table_args__ = (
        # At most one open session per plate and lot, enforced by the database itself.
        Index(
            "uq_parking_sessions_open_plate",
            "lot_id",
            "plate_normalized",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_parking_sessions_lot_status", "lot_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"))
    plate_normalized: Mapped[str] = mapped_column(String(16), index=True)
    # plate_match_key(plate_normalized): what exit matching compares (look-alikes as one)
    plate_key: Mapped[str] = mapped_column(String(16), index=True, default=plate_key_default)
    plate_display: Mapped[str] = mapped_column(String(20))
    vehicle_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | closed | void
    entry_event_id: Mapped[UUID | None] = mapped_column(Uuid, default=None)
    exit_event_id: Mapped[UUID | None] = mapped_column(Uuid, default=None)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    exit_plate: Mapped[str | None] = mapped_column(String(20), default=None)
    fee: Mapped[int | None] = mapped_column(default=None)
    fee_basis: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Money: what was paid (sum of the session's payments) and when the last payment was.
    paid_amount: Mapped[int] = mapped_column(default=0, server_default="0")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # An exit read whose fee is not paid yet: the vehicle waits at this lane, barrier closed.
    exit_held_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    exit_held_camera_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # Set when an operator opened, closed or voided the session by hand.
    manual_by: Mapped[str | None] = mapped_column(String(64), default=None)
    manual_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    # The lane picture attached to a session an operator created (no entry event).
    snapshot_event_id: Mapped[UUID | None] = mapped_column(Uuid, default=None)


class Anomaly(Base):
    """Something a guard should look at: exit without entry, low confidence, plate mismatch..."""

    __tablename__ = "anomalies"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"))
    camera_id: Mapped[str | None] = mapped_column(String(64), default=None)
    event_id: Mapped[UUID | None] = mapped_column(Uuid, default=None)
    session_id: Mapped[int | None] = mapped_column(default=None)
    plate: Mapped[str] = mapped_column(String(20), default="")
    detail: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved: Mapped[bool] = mapped_column(default=False)

"""The lot every feature names: its table, its occupancy counter and ``ensure_lot`` (find it,
or make it)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.errors import InvalidInput
from app.central.types import UTCDateTime
from app.contract import ID_PATTERN


class Lot(Base):
    __tablename__ = "lots"
    __table_args__ = (CheckConstraint("capacity >= 0", name="capacity_non_negative"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int]
    # A session paid before its exit leaves without a stop within this many minutes of paying.
    exit_grace_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    # What a vehicle without its ticket pays at least when a guard closes its session by hand.
    lost_ticket_fee: Mapped[int] = mapped_column(default=0, server_default="0")
    # A session open longer than this becomes an ``overstay`` anomaly for a guard to look at.
    max_stay_hours: Mapped[int] = mapped_column(default=72, server_default="72")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LotOccupancy(Base):
    """A lot's open sessions, one counter row per lot. Written only by the database's own
    triggers on ``lots`` and ``parking_sessions`` (migration 0006), in the same transaction as
    the change it counts: read it, never write it. ``info["derived"]``: ``migrate-sqlite``
    compares it but does not copy it (the target's triggers rebuild it from the sessions)."""

    __tablename__ = "lot_occupancy"
    __table_args__ = {"info": {"derived": True}}

    lot_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("lots.id", ondelete="CASCADE"), primary_key=True
    )
    open_sessions: Mapped[int] = mapped_column(default=0, server_default="0")


def occupancy(db: Session, *, lot_id: str) -> int:
    """How many sessions are open in the lot (0 for a lot that does not exist)."""
    return db.scalar(select(LotOccupancy.open_sessions).where(LotOccupancy.lot_id == lot_id)) or 0


DEFAULT_CAPACITY = 100


def ensure_lot(
    db: Session, *, lot_id: str, name: str | None = None, capacity: int = DEFAULT_CAPACITY
) -> Lot:
    lot = db.get(Lot, lot_id)
    if lot is None:
        if not re.fullmatch(ID_PATTERN, lot_id):
            raise InvalidInput(
                "lot id must be 1-63 lower-case letters, digits, '_' or '-'", field="lot_id"
            )
        lot = Lot(id=lot_id, name=name or lot_id, capacity=capacity)
        db.add(lot)
        db.flush()
    return lot

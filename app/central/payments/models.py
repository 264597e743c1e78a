from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.types import UTCDateTime


class Payment(Base):
    """Money taken for one session (or a fee waived, with its reason), by whom, how and when."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("parking_sessions.id"), index=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"))
    # What was due when it was taken, and what was taken: ``waived`` takes 0 of ``due``.
    due: Mapped[int]
    amount: Mapped[int]
    method: Mapped[str] = mapped_column(String(16))  # cash | card | transfer | waived
    reference: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    operator: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str | None] = mapped_column(String(64), default=None)
    command_id: Mapped[UUID | None] = mapped_column(Uuid, default=None)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

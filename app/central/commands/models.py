from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.types import UTCDateTime


class LaneCommand(Base):
    """An order to one lane (open the barrier), from an operator or a payment, with its fate.

    ``status``: pending (no poll took it yet) -> delivered (handed to the lane's agent) ->
    pulsed | failed | expired. The agent's acknowledgement is the truth about the relay: a late
    ack of a pulse turns an ``expired`` into ``pulsed``.
    """

    __tablename__ = "lane_commands"
    __table_args__ = (Index("ix_lane_commands_camera_status", "camera_id", "status"),)

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    lot_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="open")
    operator: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(12), default="pending")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    deliveries: Mapped[int] = mapped_column(default=0)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    edge_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    detail: Mapped[str] = mapped_column(String(300), default="")
    session_id: Mapped[int | None] = mapped_column(default=None)
    payment_id: Mapped[int | None] = mapped_column(default=None)

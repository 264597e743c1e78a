from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.types import UTCDateTime


class OfflineGateDecision(Base):
    """A gate action an edge took without central (central silent past the gate deadline),
    reported when the link came back. ``event_id`` is the event the decision was for, and the
    idempotency key of the report: a resent report stores nothing twice."""

    __tablename__ = "offline_decisions"
    __table_args__ = (Index("ix_offline_decisions_camera_decided", "camera_id", "decided_at"),)

    event_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"))
    plate: Mapped[str] = mapped_column(String(20))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    basis: Mapped[str] = mapped_column(String(16))
    flagged: Mapped[bool] = mapped_column(default=False)
    lists_etag: Mapped[str | None] = mapped_column(String(80), default=None)
    lists_age_s: Mapped[float | None] = mapped_column(default=None)

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.types import UTCDateTime, plate_key_default


class ListEntry(Base):
    """A vehicle on the allow list (always let in, free) or the deny list (never let in)."""

    __tablename__ = "list_entries"
    __table_args__ = (Index("ix_list_entries_plate_kind", "plate_normalized", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plate_normalized: Mapped[str] = mapped_column(String(16))
    # plate_match_key(plate_normalized): what lookups compare (look-alikes as one character)
    plate_key: Mapped[str] = mapped_column(String(16), index=True, default=plate_key_default)
    plate_display: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(8))  # allow | deny
    lot_id: Mapped[str | None] = mapped_column(ForeignKey("lots.id"), default=None)
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Subscription(Base):
    """A monthly pass: parking in the lot is free while it is valid, even when the lot is full."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_plate_lot", "plate_normalized", "lot_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plate_normalized: Mapped[str] = mapped_column(String(16))
    # plate_match_key(plate_normalized): what lookups compare (look-alikes as one character)
    plate_key: Mapped[str] = mapped_column(String(16), index=True, default=plate_key_default)
    plate_display: Mapped[str] = mapped_column(String(20))
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"))
    holder: Mapped[str] = mapped_column(String(200), default="")
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

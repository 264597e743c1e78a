from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.types import UTCDateTime


class Lot(Base):
    __tablename__ = "lots"
    __table_args__ = (CheckConstraint("capacity >= 0", name="capacity_non_negative"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

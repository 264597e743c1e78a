from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.central.db import Base


class Tariff(Base):
    """Prices for one vehicle type in one lot, in whole currency units (VND has no cents)."""

    __tablename__ = "tariffs"
    __table_args__ = (
        UniqueConstraint("lot_id", "vehicle_type"),
        CheckConstraint(
            "free_minutes >= 0 AND hourly_rate >= 0 AND daily_cap >= 0 AND overnight_fee >= 0",
            name="non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"))
    vehicle_type: Mapped[str] = mapped_column(String(16))
    free_minutes: Mapped[int] = mapped_column(default=0)
    hourly_rate: Mapped[int] = mapped_column(default=0)
    daily_cap: Mapped[int] = mapped_column(default=0)  # 0 = no cap
    overnight_fee: Mapped[int] = mapped_column(default=0)

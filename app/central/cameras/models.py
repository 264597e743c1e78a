from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.central.clock import utcnow
from app.central.db import Base
from app.central.types import UTCDateTime


class Camera(Base):
    """One lane camera (one edge agent). Its API key is stored only as a SHA-256 hash."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200), default="")
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_health: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Maintained by the offline-detection duty so that status changes are announced once.
    online: Mapped[bool] = mapped_column(default=False)
    events_received: Mapped[int] = mapped_column(default=0)
    # The lane's agent holds a command poll open until this time (set as each poll starts): a
    # lane past it (plus a reconnect allowance) is not listening, and a command to it fails.
    commands_poll_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

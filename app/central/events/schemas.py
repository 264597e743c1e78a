from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: UUID
    camera_id: str
    lot_id: str
    direction: str
    captured_at: datetime
    received_at: datetime
    plate: str
    confidence: float
    vehicle_type: str
    session_id: int | None
    has_snapshot: bool
    ack: dict[str, Any]

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.contract import CameraDirection

CameraId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$")]
LotId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$")]


class CameraCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: CameraId
    lot_id: LotId
    direction: CameraDirection
    name: Annotated[str, Field(max_length=200)] = ""


class CameraCreated(BaseModel):
    id: str
    api_key: str = Field(description="shown once; only its hash is stored")


class CameraOut(BaseModel):
    id: str
    lot_id: str
    direction: str
    name: str
    enabled: bool
    online: bool
    last_heartbeat_at: datetime | None
    seconds_since_heartbeat: float | None
    health: dict[str, Any]
    captured_total: int | None
    received_total: int
    reconciliation_gap: int | None

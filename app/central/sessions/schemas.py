from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

PlateText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_upper=True,
        min_length=2,
        max_length=16,
        pattern=r"^[A-Z0-9][A-Z0-9 .\-/]*[A-Z0-9]$",
    ),
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    lot_id: str
    plate: str = Field(validation_alias="plate_display")
    plate_normalized: str
    vehicle_type: str
    status: str
    entered_at: datetime
    exited_at: datetime | None
    exit_plate: str | None
    fee: int | None
    fee_basis: dict[str, Any] | None
    entry_event_id: UUID | None
    exit_event_id: UUID | None


class PlateCorrection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: PlateText
    reason: Reason


class AnomalyResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Reason


class AnomalyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    lot_id: str
    camera_id: str | None
    event_id: UUID | None
    session_id: int | None
    plate: str
    detail: str
    created_at: datetime
    resolved: bool

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.central.core.plates import PlateText
from app.contract import VehicleType

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
    paid_amount: int = 0
    paid_at: datetime | None = None
    exit_held_at: datetime | None = None
    exit_held_camera_id: str | None = None
    manual_by: str | None = None
    manual_reason: str | None = None
    snapshot_event_id: UUID | None = None


class SessionDue(BaseModel):
    session_id: int
    status: str
    due: int
    held_at_lane: str | None


class ManualEntry(BaseModel):
    """A vehicle the entry camera did not read, typed in by a guard at the lane."""

    model_config = ConfigDict(extra="forbid")

    camera_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$")]
    plate: PlateText
    vehicle_type: VehicleType = VehicleType.CAR
    reason: Reason
    open_gate: bool = Field(default=False, description="also open the lane's barrier")


class ManualClose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
    lost_ticket: bool = False


class VoidSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class HistoryItem(BaseModel):
    at: datetime
    kind: str  # audit action, event, payment, command
    actor: str
    summary: str
    details: dict[str, Any] = {}


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

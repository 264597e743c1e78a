from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.contract import MAX_COMMAND_TTL_S


class ManualOpen(BaseModel):
    """A guard opens a lane's barrier by hand: the reason is required and audited."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]
    ttl_s: Annotated[
        float | None,
        Field(gt=0, le=MAX_COMMAND_TTL_S, description="expiry; default: the central setting"),
    ] = None


class CommandOut(BaseModel):
    id: UUID
    camera_id: str
    lot_id: str
    kind: str
    operator: str
    reason: str
    status: str
    issued_at: datetime
    expires_at: datetime
    delivered_at: datetime | None
    acked_at: datetime | None
    edge_at: datetime | None
    deliveries: int
    detail: str
    session_id: int | None
    payment_id: int | None


class CommandAckOut(BaseModel):
    command_id: UUID
    status: str


class CommandRow(CommandOut):
    """The same, read straight from the table."""

    model_config = ConfigDict(from_attributes=True)

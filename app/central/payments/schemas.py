from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.central.commands.schemas import CommandOut
from app.central.sessions.schemas import SessionOut

Method = Literal["cash", "card", "transfer", "waived"]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method
    amount: Annotated[
        int | None, Field(ge=0, le=10**12, description="the amount due; checked, not chosen")
    ] = None
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""
    camera_id: Annotated[
        str | None,
        Field(
            pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$",
            description="open this lane once paid (default: the lane a held exit waits at)",
        ),
    ] = None


class PaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    session_id: int
    lot_id: str
    due: int
    amount: int
    method: str
    reference: str
    note: str
    operator: str
    camera_id: str | None
    command_id: UUID | None
    paid_at: datetime


class PaymentTaken(BaseModel):
    payment: PaymentOut
    session: SessionOut
    command: CommandOut | None

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Minutes = Annotated[int, Field(ge=0, le=24 * 60)]
Money = Annotated[int, Field(ge=0, le=10**12)]
Hours = Annotated[int, Field(ge=0, le=24 * 366)]


class LotOut(BaseModel):
    id: str
    name: str
    capacity: int
    occupied: int
    exit_grace_minutes: int = 15
    lost_ticket_fee: int = 0
    max_stay_hours: int = 72


class LotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$")]
    name: Annotated[str, Field(max_length=200)] = ""
    capacity: Annotated[int, Field(ge=0, le=1_000_000)]
    exit_grace_minutes: Minutes = 15
    lost_ticket_fee: Money = 0
    max_stay_hours: Hours = 72


class LotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=200)] | None = None
    capacity: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    exit_grace_minutes: Minutes | None = None
    lost_ticket_fee: Money | None = None
    max_stay_hours: Hours | None = None

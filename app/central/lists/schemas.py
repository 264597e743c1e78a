from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.central.core.plates import PlateText
from app.contract import PlausibleTime


class ListEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: PlateText
    kind: Literal["allow", "deny"]
    lot_id: Annotated[str, Field(max_length=64)] | None = None
    reason: Annotated[str, Field(max_length=500)] = ""
    expires_at: PlausibleTime | None = None


class ListEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    plate: str = Field(validation_alias="plate_display")
    plate_normalized: str
    kind: str
    lot_id: str | None
    reason: str
    created_at: datetime
    expires_at: datetime | None


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: PlateText
    lot_id: Annotated[str, Field(max_length=64)]
    holder: Annotated[str, Field(max_length=200)] = ""
    valid_from: PlausibleTime
    valid_until: PlausibleTime


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    plate: str = Field(validation_alias="plate_display")
    lot_id: str
    holder: str
    valid_from: datetime
    valid_until: datetime

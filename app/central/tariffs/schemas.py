from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.contract import VehicleType

Money = Annotated[int, Field(ge=0, le=1_000_000_000)]


class TariffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lot_id: str
    vehicle_type: VehicleType
    free_minutes: Annotated[int, Field(ge=0, le=24 * 60)] = 0
    hourly_rate: Money = 0
    daily_cap: Money = 0
    overnight_fee: Money = 0


class TariffOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    lot_id: str
    vehicle_type: str
    free_minutes: int
    hourly_rate: int
    daily_cap: int
    overnight_fee: int

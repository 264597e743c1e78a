from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class LotOut(BaseModel):
    id: str
    name: str
    capacity: int
    occupied: int


class LotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,62}$")]
    name: Annotated[str, Field(max_length=200)] = ""
    capacity: Annotated[int, Field(ge=0, le=1_000_000)]


class LotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=200)] | None = None
    capacity: Annotated[int, Field(ge=0, le=1_000_000)] | None = None

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.central.operators.service import USERNAME_PATTERN


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - OAuth2 token type
    expires_in: int
    role: str


class OperatorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, Field(pattern=USERNAME_PATTERN)]
    password: Annotated[str, Field(min_length=8, max_length=200)]
    role: Literal["guard", "manager", "admin"]


class OperatorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: bool


class OperatorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    username: str
    role: str
    active: bool
    created_at: datetime

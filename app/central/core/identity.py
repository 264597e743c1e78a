"""Identities shared by the features: plain values, tied to no database session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CameraIdentity:
    """Who is calling with a camera key: plain values, tied to no database session."""

    id: str
    lot_id: str
    direction: str
    registered_at: datetime | None = None  # no event of the camera can be older

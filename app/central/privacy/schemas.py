from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from app.central.core.plates import PlateText
from app.central.sessions.schemas import Reason


class PlateErasureIn(BaseModel):
    """The plate travels in the body, never in the URL: URLs end up in access logs."""

    model_config = ConfigDict(extra="forbid")

    plate: PlateText
    reason: Reason


class PlateErasureOut(BaseModel):
    """What was erased or anonymised, counted; the plate is not repeated."""

    plate_hash: str
    sessions: int
    events: int
    snapshots: int
    anomalies: int
    offline_decisions: int
    list_entries: int
    subscriptions: int
    lane_commands: int
    audit_entries: int

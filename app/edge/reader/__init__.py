"""Plate reading: one frame in, the plates seen in it out.

This issue defines only the interface and a stand-in (``sidecar.GroundTruthSidecarReader``) that
replays ground truth; the real TFLite detector and recognizer arrive with issue 5 and implement
the same ``PlateReader`` protocol, so nothing else in the agent changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.contract import VehicleType
from app.edge.sources import Frame


@dataclass(frozen=True, slots=True)
class PlateBox:
    """Where the plate is in the frame, in pixels."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One plate read in one frame."""

    text: str  # display form as read, e.g. "51F-123.45" or "YG9X2G"
    confidence: float  # 0..1
    box: PlateBox
    vehicle_type: VehicleType = VehicleType.UNKNOWN


class PlateReader(Protocol):
    def read(self, frame: Frame) -> list[PlateRead]: ...

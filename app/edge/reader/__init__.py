"""Plate reading: one frame in, the plates seen in it out.

``litert.LiteRTPlateReader`` is the real reader (TFLite text detection + line recognition +
plate grammar, see docs/reader.md); ``sidecar.GroundTruthSidecarReader`` is a test stand-in that
replays ground truth written next to replayed images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from app.contract import VehicleType
from app.edge.sources import Frame

# The TFLite reader's full-frame detector settings (docs/reader.md): one list for the reader,
# the lane config and bench/plates.py.
Detector = Literal["fast", "fine", "cascade"]


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
    plate: str = ""  # normalized (letters and digits, lines in reading order); "" = from text
    candidates: tuple[tuple[str, float], ...] = ()  # other readings (display, confidence)
    # the code in the plate's blue EU band ("D", "NL", ...), never part of the plate; "" none.
    # Edge-side only: the wire contract has no field for it.
    country: str = ""


class PlateReader(Protocol):
    def read(self, frame: Frame) -> list[PlateRead]: ...

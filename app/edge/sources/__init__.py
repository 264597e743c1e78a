"""Frame sources behind one small interface: a source yields ``Frame`` objects until it ends.

* ``folder``    image-folder replay (tests, demo): fps pacing, loop, frames per image.
* ``opencv``    a video file, an RTSP URL or a USB camera index through OpenCV.
* ``picamera2`` the Raspberry Pi camera; ``picamera2`` is imported only when this is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy.typing as npt

# BGR pixels as OpenCV returns them (uint8 in practice; OpenCV's stubs say "some number").
Image = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class Frame:
    """One picture from a lane camera (BGR, as OpenCV holds it)."""

    image: Image
    captured_at: datetime  # wall clock, timezone-aware: goes into the event
    monotonic_s: float  # for windows and cooldowns, immune to clock steps
    index: int
    origin: Path | None = None  # the file it came from, for replays


class FrameSource(Protocol):
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends (a finite file) or ``close`` is called."""
        ...

    def close(self) -> None: ...


class SourceError(RuntimeError):
    """A source cannot be opened or has stopped delivering frames."""

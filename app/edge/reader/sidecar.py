"""STAND-IN reader until issue 5: it does not look at pixels.

For a frame replayed from an image folder it returns the ground truth written next to the
image (``NAME.txt``: ``NAME.jpg<TAB>x<TAB>y<TAB>w<TAB>h<TAB>PLATE``, the format of
``shared/data/plates/openalpr-us``). Frames without such a file give no reads. This lets the
folder replay, the tests and the demo exercise aggregation, outbox and upload end to end.
"""

from __future__ import annotations

from pathlib import Path

from app.edge.reader import PlateBox, PlateRead
from app.edge.sources import Frame


class SidecarFormatError(ValueError):
    pass


def parse_sidecar(line: str) -> tuple[PlateBox, str]:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 6:
        raise SidecarFormatError(f"expected 6 tab-separated fields, got {len(fields)}: {line!r}")
    _, x, y, w, h, plate = fields
    try:
        box = PlateBox(int(x), int(y), int(w), int(h))
    except ValueError:
        raise SidecarFormatError(f"box fields are not integers: {line!r}") from None
    if not plate.strip():
        raise SidecarFormatError(f"empty plate text: {line!r}")
    return box, plate.strip()


class GroundTruthSidecarReader:
    """Reads ``frame.origin.with_suffix('.txt')``; ``confidence`` is what every read reports."""

    def __init__(self, *, confidence: float = 0.9) -> None:
        self._confidence = confidence
        self._cache: dict[Path, list[PlateRead]] = {}

    def read(self, frame: Frame) -> list[PlateRead]:
        if frame.origin is None:
            return []
        cached = self._cache.get(frame.origin)
        if cached is None:
            sidecar = frame.origin.with_suffix(".txt")
            reads: list[PlateRead] = []
            if sidecar.is_file():
                for line in sidecar.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        box, plate = parse_sidecar(line)
                        reads.append(PlateRead(plate, self._confidence, box))
            cached = self._cache[frame.origin] = reads
        return list(cached)

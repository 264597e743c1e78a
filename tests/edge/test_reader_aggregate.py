"""The aggregator votes over frames with the real reader's outputs (display form, candidates)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from app.contract import VehicleType
from app.edge.aggregate import ReadAggregator
from app.edge.reader import PlateBox, PlateRead
from app.edge.sources import Frame

BOX = PlateBox(1, 2, 3, 4)


def _frame(t: float) -> Frame:
    image = np.zeros((4, 4, 3), np.uint8)
    return Frame(image, datetime.fromtimestamp(1_700_000_000 + t, UTC), t, int(t * 10))


def _read(display: str, confidence: float, *alternatives: tuple[str, float]) -> PlateRead:
    return PlateRead(
        display,
        confidence,
        BOX,
        VehicleType.MOTORBIKE,
        plate=display.replace("-", "").replace(".", "").replace(" ", ""),
        candidates=((display, confidence), *alternatives),
    )


def test_votes_pick_the_majority_and_keep_the_readers_alternatives() -> None:
    agg = ReadAggregator(min_agreeing=3, window_s=2.0, leave_after_s=1.0)
    reads = [
        _read("59-X1 123.45", 0.9, ("59-X1 123.46", 0.4)),
        _read("59-X1 123.48", 0.7),  # one misread frame joins the same vehicle
        _read("59-X1 123.45", 0.8),
        _read("59-X1 123.45", 0.95),
    ]
    sightings = []
    for n, read in enumerate(reads):
        sightings += agg.feed(_frame(n * 0.1), [read])
    [sighting] = sightings
    assert sighting.plate == "59-X1 123.45"
    assert sighting.support == 3
    assert sighting.vehicle_type is VehicleType.MOTORBIKE
    plates = [c.plate for c in sighting.candidates]
    assert plates[0] == "59-X1 123.45"
    assert "59-X1 123.48" in plates, "the other vote"
    assert "59-X1 123.46" in plates, "the reader's own alternative"
    assert len(plates) == len(set(plates))

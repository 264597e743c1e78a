from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from app.edge.aggregate import ReadAggregator, Sighting
from app.edge.reader import PlateBox, PlateRead
from app.edge.sources import Frame

IMAGE = np.zeros((4, 4, 3), dtype=np.uint8)
BOX = PlateBox(1, 2, 3, 4)


def frame(t: float) -> Frame:
    return Frame(IMAGE, datetime.fromtimestamp(1_700_000_000 + t, UTC), t, int(t * 10))


def feed(agg: ReadAggregator, t: float, *texts: str, confidence: float = 0.9) -> list[Sighting]:
    return agg.feed(frame(t), [PlateRead(text, confidence, BOX) for text in texts])


def test_three_agreeing_reads_make_one_sighting_at_the_third() -> None:
    agg = ReadAggregator(min_agreeing=3, window_s=2.0, leave_after_s=1.0)
    assert feed(agg, 0.0, "51F-123.45") == []
    assert feed(agg, 0.2, "51F-123.45") == []
    [sighting] = feed(agg, 0.4, "51F-123.45")
    assert (sighting.plate, sighting.support, sighting.complete) == ("51F-123.45", 3, True)
    assert feed(agg, 0.6, "51F-123.45") == [], "the same vehicle is reported once"
    assert agg.tick(5.0) == [], "nor again when it leaves"


def test_reads_outside_the_window_do_not_agree() -> None:
    agg = ReadAggregator(min_agreeing=3, window_s=1.0, leave_after_s=10.0)
    for t in (0.0, 0.9, 1.8):
        assert feed(agg, t, "ABC123") == []
    assert feed(agg, 2.2, "ABC123") == []
    assert len(feed(agg, 2.4, "ABC123")) == 1, "1.8, 2.2 and 2.4 lie within one second"


def test_a_vehicle_that_leaves_before_agreement_gets_its_best_supported_read() -> None:
    agg = ReadAggregator(min_agreeing=5, leave_after_s=1.0)
    feed(agg, 0.0, "ABC123")
    feed(agg, 0.1, "ABC128")  # one character misread: the same vehicle
    feed(agg, 0.2, "ABC123")
    [sighting] = agg.tick(2.0)
    assert sighting.plate == "ABC123"
    assert sighting.complete is False
    assert [c.plate for c in sighting.candidates] == ["ABC123", "ABC128"]


def test_the_same_plate_is_not_reported_again_within_the_cooldown() -> None:
    agg = ReadAggregator(min_agreeing=1, leave_after_s=0.5, cooldown_s=30.0)
    assert len(feed(agg, 0.0, "XYZ789")) == 1
    agg.tick(1.0)
    assert feed(agg, 10.0, "XYZ789") == []
    assert agg.suppressed_total == 1
    agg.tick(11.0)
    assert len(feed(agg, 40.0, "XYZ789")) == 1, "after the cooldown it is a new visit"


def test_low_confidence_and_impossible_plates_are_rejected_and_counted() -> None:
    agg = ReadAggregator(min_agreeing=1, min_confidence=0.6)
    assert feed(agg, 0.0, "ABC123", confidence=0.3) == []
    assert feed(agg, 0.1, "#", confidence=0.9) == []
    assert agg.reads_rejected_total == 2


def test_two_vehicles_in_view_are_two_tracks() -> None:
    agg = ReadAggregator(min_agreeing=2)
    feed(agg, 0.0, "AAA111", "ZZZ999")
    sightings = feed(agg, 0.1, "AAA111", "ZZZ999")
    assert sorted(s.plate for s in sightings) == ["AAA111", "ZZZ999"]


def test_each_rejected_read_is_reported_to_the_metrics_hook() -> None:
    agg = ReadAggregator(min_confidence=0.5)
    rejected: list[int] = []
    agg.on_reject = lambda: rejected.append(1)
    feed(agg, 0.0, "51F-123.45", confidence=0.2)
    feed(agg, 0.1, "<not a plate>")
    feed(agg, 0.2, "51F-123.45")
    assert len(rejected) == 2 == agg.reads_rejected_total

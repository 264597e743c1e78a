from __future__ import annotations

from datetime import UTC, datetime

from app.edge.ids import EventIdFactory, uuid7_time_ms


def test_event_ids_are_uuid_version_7_with_rfc_variant_and_capture_time() -> None:
    at = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    event_id = EventIdFactory().new(at)
    assert event_id.version == 7
    assert event_id.variant == "specified in RFC 4122"
    assert uuid7_time_ms(event_id) == int(at.timestamp() * 1000)


def test_ids_made_in_one_millisecond_still_sort_in_creation_order() -> None:
    factory = EventIdFactory(clock_ms=lambda: 1_700_000_000_000)
    ids = [factory.new() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_a_clock_stepping_back_does_not_break_the_order() -> None:
    times = iter([5_000, 5_000, 4_000, 6_000])
    factory = EventIdFactory(clock_ms=lambda: next(times))
    ids = [factory.new() for _ in range(4)]
    assert ids == sorted(ids)
    assert uuid7_time_ms(ids[2]) == 5_000

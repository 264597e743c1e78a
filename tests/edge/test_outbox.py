from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from app.edge.outbox import DB_NAME, SNAPSHOT_DIR, Outbox, OutboxFullError, write_durably
from tests.edge.helpers import jpeg, make_event


def test_outbox_runs_sqlite_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with Outbox(tmp_path) as outbox:
        db = outbox._db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_snapshot_is_on_disk_before_the_row_commits(tmp_path: Path) -> None:
    seen: list[tuple[bool, int]] = []

    def spy_writer(path: Path, data: bytes) -> None:
        write_durably(path, data)
        # At this point the file exists and no row names it yet.
        rows = sqlite3.connect(tmp_path / DB_NAME).execute("SELECT COUNT(*) FROM events")
        seen.append((path.exists(), rows.fetchone()[0]))

    with Outbox(tmp_path, snapshot_writer=spy_writer) as outbox:
        outbox.enqueue(make_event(), jpeg(5000))
        assert seen == [(True, 0)]
        [pending] = outbox.pending("edge-in")
        assert pending.snapshot_path is not None
        assert pending.snapshot_path.read_bytes() == jpeg(5000)
        assert '"snapshot_b64":"' in pending.wire_json()


def test_events_survive_a_process_that_never_closed_the_outbox(tmp_path: Path) -> None:
    events = [make_event(plate=f"AB{i:04d}") for i in range(5)]
    crashed = Outbox(tmp_path)
    for event in events:
        crashed.enqueue(event, jpeg(100))
    # no close(): reopen from another connection as a restarted agent would
    with Outbox(tmp_path) as outbox:
        assert [p.event_id for p in outbox.pending("edge-in")] == [e.event_id for e in events]
        assert outbox.stats().snapshot_bytes == 500
    crashed.close()


def test_an_interrupted_snapshot_write_leaves_no_row_and_its_file_is_cleaned(
    tmp_path: Path,
) -> None:
    with Outbox(tmp_path) as outbox:
        outbox.enqueue(make_event(), jpeg(100))
    orphan = tmp_path / SNAPSHOT_DIR / "0123.jpg"
    orphan.write_bytes(b"half")
    (tmp_path / SNAPSHOT_DIR / "0456.jpg.tmp").write_bytes(b"half")
    with Outbox(tmp_path) as outbox:
        assert outbox.remove_orphan_snapshots() == 2
        assert not orphan.exists()
        assert outbox.stats().snapshots == 1


def test_byte_bound_evicts_oldest_snapshots_first_and_keeps_every_row(tmp_path: Path) -> None:
    with Outbox(tmp_path, max_bytes=60_000) as outbox:
        events = [make_event(plate=f"CD{i:04d}") for i in range(10)]
        for event in events:
            outbox.enqueue(event, jpeg(10_000))
        stats = outbox.stats()
        assert stats.depth == 10, "rows are kept"
        assert stats.bytes <= 60_000
        assert stats.snapshots_evicted_total >= 4
        pending = outbox.pending("edge-in")
        with_snapshot = [p.snapshot_path is not None for p in pending]
        # The oldest lost theirs, the newest kept them.
        assert with_snapshot == sorted(with_snapshot)
        assert with_snapshot[-1] is True
        files = list((tmp_path / SNAPSHOT_DIR).iterdir())
        assert len(files) == sum(with_snapshot)


def test_when_rows_alone_reach_the_bound_new_events_are_refused_and_counted(
    tmp_path: Path,
) -> None:
    with Outbox(tmp_path, max_bytes=4_000) as outbox:
        accepted = 0
        while outbox.stats().row_bytes + 600 < 4_000:
            outbox.enqueue(make_event(plate=f"EF{accepted:04d}"), jpeg(1_000))
            accepted += 1
        assert outbox.stats().snapshots_evicted_total > 0, "snapshots went first"
        with pytest.raises(OutboxFullError):
            outbox.enqueue(make_event(plate="EF9999"), jpeg(1_000))
        stats = outbox.stats()
        assert stats.depth == accepted
        assert stats.refused_total == 1
        assert stats.captured_total == accepted + 1, "refused events still count as captured"
        with pytest.raises(OutboxFullError):
            outbox.enqueue(make_event(), None)
        assert outbox.stats().refused_total == 2


def test_disk_full_while_writing_a_snapshot_keeps_the_event_without_it(tmp_path: Path) -> None:
    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with Outbox(tmp_path, snapshot_writer=full_disk) as outbox:
        result = outbox.enqueue(make_event(), jpeg(2_000))
        assert result.snapshot_kept is False
        [pending] = outbox.pending("edge-in")
        assert pending.snapshot_path is None


def test_delivered_events_leave_the_queue_and_enter_the_journal(tmp_path: Path) -> None:
    with Outbox(tmp_path) as outbox:
        events = [make_event(plate=f"GH{i:04d}") for i in range(3)]
        for event in events:
            outbox.enqueue(event, jpeg(300))
        pending = outbox.pending("edge-in")
        assert outbox.mark_delivered(pending[:2]) == 2
        assert outbox.mark_delivered(pending[:2]) == 0, "a retried ack changes nothing"
        assert outbox.delivered_ids() == {events[0].event_id, events[1].event_id}
        stats = outbox.stats()
        assert (stats.depth, stats.delivered_total, stats.captured_total) == (1, 2, 3)
        assert stats.snapshot_bytes == 300
        assert len(list((tmp_path / SNAPSHOT_DIR).iterdir())) == 1


def test_a_delivery_whose_commit_fails_frees_no_bytes_and_the_retry_counts_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk can fail the commit of a delivery (the soak's disk-full fault): the rows stay,
    so the byte counts must too, or the retry frees them twice and the counts go negative (the
    heartbeat then failed validation for good: its lane showed offline)."""
    with Outbox(tmp_path) as outbox:
        for i in range(3):
            outbox.enqueue(make_event(plate=f"FD{i:04d}"), jpeg(300))
        before = outbox.stats()
        pending = outbox.pending("edge-in")

        def disk_full(now: float) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        with monkeypatch.context() as patch:
            patch.setattr(outbox, "_prune_journal", disk_full)
            with pytest.raises(sqlite3.OperationalError):
                outbox.mark_delivered(pending)
        after_failure = outbox.stats()
        assert (after_failure.depth, after_failure.bytes) == (3, before.bytes)
        assert outbox.mark_delivered(pending) == 3
        stats = outbox.stats()
        assert stats.depth == 0
        assert (stats.bytes, stats.snapshot_bytes) == (0, 0)


def test_counts_that_drifted_below_zero_are_measured_again(tmp_path: Path) -> None:
    with Outbox(tmp_path) as outbox:
        outbox.enqueue(make_event(plate="FD0001"), jpeg(300))
        good = outbox.stats()
        outbox._row_bytes -= 10 * good.bytes  # as the failed commit above used to leave them
        assert outbox.stats().bytes == good.bytes


def test_pending_is_in_capture_order_per_camera_and_capped_by_wire_bytes(tmp_path: Path) -> None:
    with Outbox(tmp_path) as outbox:
        for i in range(6):
            outbox.enqueue(
                make_event("edge-in" if i % 2 else "edge-out", plate=f"JK{i:04d}"), jpeg(30_000)
            )
        assert sorted(outbox.pending_cameras()) == ["edge-in", "edge-out"]
        plates = [p.payload for p in outbox.pending("edge-in")]
        assert [p.split('"plate":"')[1][:6] for p in plates] == ["JK0001", "JK0003", "JK0005"]
        assert len(outbox.pending("edge-in", max_wire_bytes=90_000)) == 2
        assert len(outbox.pending("edge-in", max_wire_bytes=10)) == 1, "never less than one"


def test_permanent_failures_dead_letter_after_n_tries_and_requeue_restores_order(
    tmp_path: Path,
) -> None:
    with Outbox(tmp_path, max_permanent_attempts=3) as outbox:
        first, bad, last = (make_event(plate=p) for p in ("AA0001", "AA0002", "AA0003"))
        for event in (first, bad, last):
            outbox.enqueue(event, jpeg(100))
        target = outbox.pending("edge-in")[1]
        assert not outbox.record_failure(target, status=503, error="busy", permanent=False)
        assert not outbox.record_failure(target, status=422, error="bad", permanent=True)
        assert not outbox.record_failure(target, status=422, error="bad", permanent=True)
        assert outbox.record_failure(target, status=422, error="bad plate", permanent=True)
        assert [p.event_id for p in outbox.pending("edge-in")] == [first.event_id, last.event_id]
        [letter] = outbox.dead_letters()
        assert (letter.event_id, letter.attempts, letter.last_status) == (bad.event_id, 4, 422)
        assert letter.has_snapshot
        assert outbox.requeue(str(bad.event_id))
        assert outbox.dead_letters() == []
        assert [p.event_id for p in outbox.pending("edge-in")] == [
            first.event_id,
            bad.event_id,
            last.event_id,
        ]
        assert not outbox.requeue(str(bad.event_id)), "nothing left to requeue"

"""The durable outbox: every event is on disk before anything else happens to it.

* SQLite in WAL mode with ``synchronous=FULL``: a committed row survives power loss.
* The snapshot JPEG is written to ``snapshots/``, fsynced, renamed and its directory fsynced
  *before* the row that names it commits; a crash in between leaves an orphan file that the
  next ``open`` removes, never a row pointing at nothing.
* Bounded by bytes (rows + snapshots, dead letters included). When an event does not fit, the
  oldest snapshots are dropped first and their rows kept; only when the rows alone reach the
  bound is the new event refused (``OutboxFullError``), counted per camera.
* Delivered rows are deleted and their ids kept in a ``delivered`` journal for reconciliation.
* Permanent failures move a row to ``dead_letters`` after ``max_permanent_attempts`` tries;
  ``requeue`` moves it back with its original sequence number (capture order).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from app.contract import PlateEvent
from app.edge.logs import event_fields

log = logging.getLogger(__name__)

DB_NAME = "outbox.db"
SNAPSHOT_DIR = "snapshots"
# SQLite's own per-row cost (keys, indexes, page slack) on top of the payload text.
ROW_OVERHEAD_BYTES = 256
DELIVERED_RETENTION_S = 7 * 24 * 3600
DELIVERED_MAX_ROWS = 200_000

_COLUMNS = (
    "seq, event_id, camera_id, captured_at, payload, snapshot_file, snapshot_bytes, row_bytes, "
    "attempts, permanent_attempts, last_status, last_error, enqueued_at"
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    camera_id TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    snapshot_file TEXT,
    snapshot_bytes INTEGER NOT NULL DEFAULT 0,
    row_bytes INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    permanent_attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    enqueued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_camera ON events (camera_id, seq);
CREATE INDEX IF NOT EXISTS events_with_snapshot ON events (seq) WHERE snapshot_file IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    {_COLUMNS.replace("seq,", "seq INTEGER PRIMARY KEY,", 1)},
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_with_snapshot ON dead_letters (seq)
    WHERE snapshot_file IS NOT NULL;
CREATE TABLE IF NOT EXISTS delivered (
    event_id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    delivered_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivered_by_time ON delivered (delivered_at);
CREATE TABLE IF NOT EXISTS counters (
    camera_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (camera_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gate_actions (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    offline INTEGER NOT NULL,
    flagged INTEGER NOT NULL
);
"""


class OutboxError(RuntimeError):
    pass


class OutboxFullError(OutboxError):
    """The rows alone fill the byte bound (or the disk): the new event was refused."""


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    seq: int
    snapshot_kept: bool
    snapshots_evicted: int


@dataclass(frozen=True, slots=True)
class PendingEvent:
    seq: int
    event_id: UUID
    camera_id: str
    payload: str  # PlateEvent JSON without the snapshot
    snapshot_path: Path | None
    attempts: int
    enqueued_at: float

    def wire_json(self, *, with_snapshot: bool = True) -> str:
        """The PlateEvent JSON as central takes it, the snapshot read back and base64'd."""
        if not with_snapshot or self.snapshot_path is None:
            return self.payload
        try:
            raw = self.snapshot_path.read_bytes()
        except FileNotFoundError:
            return self.payload  # evicted after we picked the row: the event still goes
        return f'{self.payload[:-1]},"snapshot_b64":"{base64.b64encode(raw).decode()}"}}'


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int
    event_id: UUID
    camera_id: str
    captured_at: str
    attempts: int
    last_status: int | None
    last_error: str | None
    dead_at: float
    has_snapshot: bool


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    oldest_age_s: float
    bytes: int
    row_bytes: int
    snapshot_bytes: int
    snapshots: int
    max_bytes: int
    dead_letters: int
    captured_total: int
    delivered_total: int
    refused_total: int
    snapshots_evicted_total: int
    held_dropped_total: int = 0  # sightings dropped while the clock was unsynchronised


SnapshotWriter = Callable[[Path, bytes], None]


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, *, sync_directory: bool = True) -> None:
    """Write ``data`` to ``path`` so that it is on disk, name included, when this returns.

    No temporary name: a crash mid-write leaves a file no row names, which ``open`` removes.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fdatasync(fd)  # data and size; the name is made durable by the directory fsync
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)
    if sync_directory:
        fsync_directory(path.parent)


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == 13 or "full" in str(exc)
    return False


class Outbox:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        max_permanent_attempts: int = 3,
        clock: Callable[[], float] = time.time,
        snapshot_writer: SnapshotWriter = write_durably,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_permanent_attempts = max_permanent_attempts
        self._clock = clock
        self._write_snapshot = snapshot_writer
        self._lock = threading.RLock()
        self._snapshots = directory / SNAPSHOT_DIR
        self._snapshots.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            directory / DB_NAME, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        self._row_bytes, self._snapshot_bytes = self._measure()
        self._last_prune = 0.0
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _measure(self) -> tuple[int, int]:
        row = self._db.execute(
            "SELECT (SELECT COALESCE(SUM(row_bytes), 0) FROM events)"
            " + (SELECT COALESCE(SUM(row_bytes), 0) FROM dead_letters),"
            " (SELECT COALESCE(SUM(snapshot_bytes), 0) FROM events WHERE snapshot_file IS NOT NULL)"
            " + (SELECT COALESCE(SUM(snapshot_bytes), 0) FROM dead_letters"
            "    WHERE snapshot_file IS NOT NULL)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def remove_orphan_snapshots(self) -> int:
        """Delete snapshot files no row names: left by a crash between write and commit."""
        with self._lock:
            named = {
                name
                for (name,) in self._db.execute(
                    "SELECT snapshot_file FROM events WHERE snapshot_file IS NOT NULL"
                    " UNION ALL SELECT snapshot_file FROM dead_letters"
                    " WHERE snapshot_file IS NOT NULL"
                )
            }
            removed = 0
            for path in self._snapshots.iterdir():
                if path.name not in named:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
            return removed

    # -- counters --------------------------------------------------------------------------

    def _bump(self, camera_id: str, name: str, by: int = 1) -> None:
        self._db.execute(
            "INSERT INTO counters (camera_id, name, value) VALUES (?, ?, ?)"
            " ON CONFLICT (camera_id, name) DO UPDATE SET value = value + excluded.value",
            (camera_id, name, by),
        )

    def counter(self, name: str, camera_id: str | None = None) -> int:
        with self._lock:
            if camera_id is None:
                row = self._db.execute(
                    "SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = ?", (name,)
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = ? AND camera_id = ?",
                    (name, camera_id),
                ).fetchone()
            return int(row[0])

    # -- enqueue ---------------------------------------------------------------------------

    def enqueue(self, event: PlateEvent, snapshot: bytes | None = None) -> EnqueueResult:
        """Store ``event`` durably; raise ``OutboxFullError`` (and count it) when it cannot be."""
        payload = event.model_dump_json(exclude={"snapshot_b64"})
        if snapshot is None and event.snapshot_b64:
            snapshot = event.snapshot_bytes()
        row_bytes = len(payload) + ROW_OVERHEAD_BYTES
        with self._lock:
            if self._row_bytes + row_bytes > self.max_bytes:
                self._refuse(event, "rows fill the outbox byte bound")
            evicted = 0
            if snapshot is not None and (
                self._row_bytes + row_bytes + len(snapshot) > self.max_bytes
            ):
                log.warning(
                    "outbox: snapshot of %s can never fit; row kept",
                    event.event_id,
                    extra=event_fields(event.event_id, event.camera_id),
                )
                snapshot = None
            if snapshot is not None:
                excess = self._row_bytes + self._snapshot_bytes + row_bytes + len(snapshot)
                excess -= self.max_bytes
                if excess > 0:
                    evicted = self._evict_snapshots(excess)
                    if self._row_bytes + self._snapshot_bytes + row_bytes + len(snapshot) > (
                        self.max_bytes
                    ):
                        log.warning(
                            "outbox: no room for the snapshot of %s; row kept",
                            event.event_id,
                            extra=event_fields(event.event_id, event.camera_id),
                        )
                        snapshot = None
            snapshot_file: str | None = None
            if snapshot is not None:
                snapshot_file = f"{event.event_id.hex}.jpg"
                try:
                    self._write_snapshot(self._snapshots / snapshot_file, snapshot)
                except OSError as exc:
                    if not _is_disk_full(exc):
                        raise
                    # The disk is fuller than our bound thinks: make room, keep the row.
                    evicted += self._evict_snapshots(max(len(snapshot) * 8, 1 << 20))
                    log.error(
                        "outbox: disk full writing snapshot of %s: %s",
                        event.event_id,
                        exc,
                        extra=event_fields(event.event_id, event.camera_id),
                    )
                    snapshot_file, snapshot = None, None
            try:
                seq = self._insert(event, payload, row_bytes, snapshot_file, snapshot)
            except sqlite3.OperationalError as exc:
                if snapshot_file is not None:
                    with contextlib.suppress(OSError):
                        (self._snapshots / snapshot_file).unlink()
                if not _is_disk_full(exc):
                    raise
                evicted += self._evict_snapshots(1 << 22)
                try:
                    seq = self._insert(event, payload, row_bytes, None, None)
                    snapshot = None
                except sqlite3.OperationalError as again:
                    if not _is_disk_full(again):
                        raise
                    self._refuse(event, f"disk full: {again}")
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "outbox: event %s of %s queued (seq %d)",
                    event.event_id,
                    event.camera_id,
                    seq,
                    extra=event_fields(event.event_id, event.camera_id, seq=seq, outcome="queued"),
                )
            return EnqueueResult(
                seq=seq, snapshot_kept=snapshot is not None, snapshots_evicted=evicted
            )

    def _insert(
        self,
        event: PlateEvent,
        payload: str,
        row_bytes: int,
        snapshot_file: str | None,
        snapshot: bytes | None,
    ) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO events (event_id, camera_id, captured_at, payload, snapshot_file,"
                " snapshot_bytes, row_bytes, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(event.event_id),
                    event.camera_id,
                    event.captured_at.isoformat(),
                    payload,
                    snapshot_file,
                    len(snapshot) if snapshot is not None else 0,
                    row_bytes,
                    self._clock(),
                ),
            )
            self._bump(event.camera_id, "captured_total")
            seq = cursor.lastrowid
        assert seq is not None
        self._row_bytes += row_bytes
        self._snapshot_bytes += len(snapshot) if snapshot is not None else 0
        return seq

    def _refuse(self, event: PlateEvent, why: str) -> None:
        log.error(
            "outbox FULL: refused event %s of camera %s (%s); %d row bytes of %d",
            event.event_id,
            event.camera_id,
            why,
            self._row_bytes,
            self.max_bytes,
            extra=event_fields(event.event_id, event.camera_id, outcome="refused"),
        )
        with contextlib.suppress(sqlite3.Error), self._transaction():
            # Refused events still count as captured: central's reconciliation shows the gap.
            self._bump(event.camera_id, "refused_total")
            self._bump(event.camera_id, "captured_total")
        raise OutboxFullError(f"outbox refused event {event.event_id}: {why}")

    def count_lost(self, camera_id: str, counter: str = "held_dropped_total", n: int = 1) -> None:
        """Sightings that never became an event (dropped while the clock was unsynchronised,
        or refused before the outbox): counted under ``counter`` and, like refused events, in
        ``captured_total``, so central's reconciliation shows the gap."""
        with self._lock, contextlib.suppress(sqlite3.Error), self._transaction():
            self._bump(camera_id, counter, n)
            self._bump(camera_id, "captured_total", n)

    def _evict_snapshots(self, need: int) -> int:
        """Drop the oldest snapshots (pending and dead) until ``need`` bytes are freed."""
        freed, evicted = 0, 0
        while freed < need:
            victims = self._db.execute(
                "SELECT seq, snapshot_file, snapshot_bytes, camera_id, 'events' FROM events"
                " WHERE snapshot_file IS NOT NULL"
                " UNION ALL SELECT seq, snapshot_file, snapshot_bytes, camera_id, 'dead_letters'"
                " FROM dead_letters WHERE snapshot_file IS NOT NULL ORDER BY 1 LIMIT 64"
            ).fetchall()
            if not victims:
                break
            chosen = []
            for victim in victims:
                chosen.append(victim)
                freed += int(victim[2])
                if freed >= need:
                    break
            with self._transaction() as db:
                for seq, _, _, camera_id, table in chosen:
                    db.execute(
                        f"UPDATE {table} SET snapshot_file = NULL, snapshot_bytes = 0"  # noqa: S608
                        " WHERE seq = ?",
                        (seq,),
                    )
                    self._bump(camera_id, "snapshots_evicted_total")
            for _, name, size, _, _ in chosen:
                self._snapshot_bytes -= int(size)
                with contextlib.suppress(FileNotFoundError):
                    (self._snapshots / name).unlink()
            evicted += len(chosen)
        if evicted:
            log.warning("outbox: evicted the %d oldest snapshots to stay within bounds", evicted)
        return evicted

    # -- the uploader's side ---------------------------------------------------------------

    def pending_cameras(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT DISTINCT camera_id FROM events")]

    def pending(
        self, camera_id: str, *, limit: int = 100, max_wire_bytes: int | None = None
    ) -> list[PendingEvent]:
        """The oldest undelivered events of ``camera_id``, in capture order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, camera_id, payload, snapshot_file, attempts, enqueued_at,"
                " snapshot_bytes FROM events WHERE camera_id = ? ORDER BY seq LIMIT ?",
                (camera_id, limit),
            ).fetchall()
        events: list[PendingEvent] = []
        total = 0
        for seq, event_id, camera, payload, snapshot_file, attempts, enqueued_at, snap in rows:
            size = len(payload) + (int(snap) * 4) // 3 + 20
            if max_wire_bytes is not None and events and total + size > max_wire_bytes:
                break
            total += size
            events.append(
                PendingEvent(
                    seq=int(seq),
                    event_id=UUID(event_id),
                    camera_id=camera,
                    payload=payload,
                    snapshot_path=self._snapshots / snapshot_file if snapshot_file else None,
                    attempts=int(attempts),
                    enqueued_at=float(enqueued_at),
                )
            )
        return events

    def mark_delivered(self, events: Sequence[PendingEvent]) -> int:
        """Central has acknowledged ``events``: forget them, keep their ids in the journal."""
        if not events:
            return 0
        now = self._clock()
        removed: list[tuple[str, int]] = []
        freed_rows = 0  # counted once the deletes are committed: a failed commit frees nothing
        with self._lock, self._transaction() as db:
            for event in events:
                row = db.execute(
                    "DELETE FROM events WHERE seq = ? RETURNING snapshot_file, snapshot_bytes,"
                    " row_bytes, camera_id",
                    (event.seq,),
                ).fetchone()
                if row is None:
                    continue  # already delivered (a retried batch)
                snapshot_file, snapshot_bytes, row_bytes, camera_id = row
                db.execute(
                    "INSERT OR IGNORE INTO delivered (event_id, camera_id, seq, delivered_at)"
                    " VALUES (?, ?, ?, ?)",
                    (str(event.event_id), camera_id, event.seq, now),
                )
                self._bump(camera_id, "delivered_total")
                removed.append((snapshot_file, int(snapshot_bytes)))
                freed_rows += int(row_bytes)
            self._prune_journal(now)
        with self._lock:
            self._row_bytes -= freed_rows
            for name, size in removed:
                if name:
                    self._snapshot_bytes -= size
                    with contextlib.suppress(FileNotFoundError):
                        (self._snapshots / name).unlink()
        return len(removed)

    def _prune_journal(self, now: float) -> None:
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        self._db.execute(
            "DELETE FROM delivered WHERE delivered_at < ?", (now - DELIVERED_RETENTION_S,)
        )
        self._db.execute(
            "DELETE FROM delivered WHERE event_id IN (SELECT event_id FROM delivered"
            " ORDER BY delivered_at DESC LIMIT -1 OFFSET ?)",
            (DELIVERED_MAX_ROWS,),
        )

    def record_failure(
        self, event: PendingEvent, *, status: int | None, error: str, permanent: bool
    ) -> bool:
        """Count a failed try; a permanent one dead-letters the event after N tries. Returns
        whether it was dead-lettered."""
        with self._lock, self._transaction() as db:
            row = db.execute(
                "UPDATE events SET attempts = attempts + 1, last_status = ?, last_error = ?,"
                " permanent_attempts = permanent_attempts + ? WHERE seq = ?"
                " RETURNING permanent_attempts",
                (status, error[:500], int(permanent), event.seq),
            ).fetchone()
            if row is None or not permanent or int(row[0]) < self.max_permanent_attempts:
                return False
            db.execute(
                f"INSERT INTO dead_letters ({_COLUMNS}, dead_at)"  # noqa: S608
                f" SELECT {_COLUMNS}, ? FROM events WHERE seq = ?",
                (self._clock(), event.seq),
            )
            db.execute("DELETE FROM events WHERE seq = ?", (event.seq,))
            self._bump(event.camera_id, "dead_lettered_total")
        log.error(
            "outbox: event %s of camera %s dead-lettered after %s tries: %s %s",
            event.event_id,
            event.camera_id,
            row[0],
            status,
            error[:200],
            extra=event_fields(
                event.event_id, event.camera_id, outcome="dead-lettered", status=status
            ),
        )
        return True

    # -- dead letters ----------------------------------------------------------------------

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, camera_id, captured_at, attempts, last_status, last_error,"
                " dead_at, snapshot_file IS NOT NULL FROM dead_letters ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            DeadLetter(
                seq=int(r[0]),
                event_id=UUID(r[1]),
                camera_id=r[2],
                captured_at=r[3],
                attempts=int(r[4]),
                last_status=r[5],
                last_error=r[6],
                dead_at=float(r[7]),
                has_snapshot=bool(r[8]),
            )
            for r in rows
        ]

    def requeue(self, ident: str) -> bool:
        """Move a dead letter (by event id or seq) back to the queue at its capture position."""
        with self._lock, self._transaction() as db:
            where, key = ("seq = ?", int(ident)) if ident.isdigit() else ("event_id = ?", ident)
            if not ident.isdigit():
                with contextlib.suppress(ValueError):
                    key = str(UUID(ident))
            moved = db.execute(
                f"INSERT INTO events ({_COLUMNS}) SELECT seq, event_id, camera_id, captured_at,"  # noqa: S608
                " payload, snapshot_file, snapshot_bytes, row_bytes, 0, 0, last_status,"
                f" last_error, enqueued_at FROM dead_letters WHERE {where}",
                (key,),
            ).rowcount
            db.execute(f"DELETE FROM dead_letters WHERE {where}", (key,))  # noqa: S608
        return moved > 0

    # -- gate record -----------------------------------------------------------------------

    def record_gate_action(
        self,
        *,
        event_id: UUID,
        camera_id: str,
        action: str,
        reason: str,
        offline: bool,
        flagged: bool,
    ) -> None:
        with self._lock, self._transaction() as db:
            db.execute(
                "INSERT INTO gate_actions (event_id, camera_id, at, action, reason, offline,"
                " flagged) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (str(event_id), camera_id, self._clock(), action, reason, offline, flagged),
            )
            if offline:
                self._bump(camera_id, "gate_offline_total")

    def gate_actions(self, limit: int = 100) -> list[tuple[str, str, str, bool, bool]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, action, reason, offline, flagged FROM gate_actions"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [(r[0], r[1], r[2], bool(r[3]), bool(r[4])) for r in rows]

    # -- figures ---------------------------------------------------------------------------

    def delivered_ids(self, camera_id: str | None = None) -> set[UUID]:
        with self._lock:
            query = "SELECT event_id FROM delivered"
            rows = (
                self._db.execute(query + " WHERE camera_id = ?", (camera_id,))
                if camera_id
                else self._db.execute(query)
            )
            return {UUID(r[0]) for r in rows}

    def pending_ids(self) -> list[UUID]:
        with self._lock:
            return [
                UUID(r[0]) for r in self._db.execute("SELECT event_id FROM events ORDER BY seq")
            ]

    def stats(self, camera_id: str | None = None) -> OutboxStats:
        where = " WHERE camera_id = ?" if camera_id else ""
        args: tuple[str, ...] = (camera_id,) if camera_id else ()
        with self._lock:
            depth, oldest, snapshots = self._db.execute(
                "SELECT COUNT(*), MIN(enqueued_at), COUNT(snapshot_file) FROM events"  # noqa: S608
                + where,
                args,
            ).fetchone()
            dead, dead_snapshots = self._db.execute(
                "SELECT COUNT(*), COUNT(snapshot_file) FROM dead_letters" + where,  # noqa: S608
                args,
            ).fetchone()
            if self._row_bytes < 0 or self._snapshot_bytes < 0:
                # The running counts drifted (a bug, never expected): the rows are the truth.
                log.error(
                    "outbox: byte counts drifted below zero (%d, %d), measured again",
                    self._row_bytes, self._snapshot_bytes,
                )  # fmt: skip
                self._row_bytes, self._snapshot_bytes = self._measure()
            row_bytes, snapshot_bytes = self._row_bytes, self._snapshot_bytes
        return OutboxStats(
            depth=int(depth),
            oldest_age_s=max(0.0, self._clock() - float(oldest)) if oldest is not None else 0.0,
            bytes=row_bytes + snapshot_bytes,
            row_bytes=row_bytes,
            snapshot_bytes=snapshot_bytes,
            snapshots=int(snapshots) + int(dead_snapshots),
            max_bytes=self.max_bytes,
            dead_letters=int(dead),
            captured_total=self.counter("captured_total", camera_id),
            delivered_total=self.counter("delivered_total", camera_id),
            refused_total=self.counter("refused_total", camera_id),
            snapshots_evicted_total=self.counter("snapshots_evicted_total", camera_id),
            held_dropped_total=self.counter("held_dropped_total", camera_id),
        )

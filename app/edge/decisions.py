"""The journal of gate decisions taken without central, until central has them.

``<data_dir>/gate/offline.db``: SQLite, WAL, ``synchronous=FULL``. A decision is committed
before the relay moves (a power cut cannot lose one that acted); ``reported_at`` is set only
after central acknowledged the report, and a resent report is harmless (central keys it by
``event_id``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from app.contract import OfflineDecision

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offline_decisions (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    camera_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    reported_at REAL
);
CREATE INDEX IF NOT EXISTS ix_offline_unreported ON offline_decisions (reported_at, seq);
"""


@dataclass(frozen=True, slots=True)
class JournalStats:
    total: int
    unreported: int


class OfflineJournal:
    def __init__(
        self, directory: Path, *, clock: Callable[[], float] = time.time, keep_days: float = 30
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "offline.db"
        self._clock = clock
        self._keep_s = keep_days * 86400
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def record(self, decision: OfflineDecision) -> bool:
        """Store durably; False when this event's decision was recorded already."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO offline_decisions"
                " (event_id, camera_id, payload, recorded_at) VALUES (?, ?, ?, ?)",
                (
                    str(decision.event_id),
                    decision.camera_id,
                    decision.model_dump_json(),
                    self._clock(),
                ),
            )
            return cursor.rowcount == 1

    def unreported(self, limit: int) -> list[OfflineDecision]:
        with self._lock:
            rows = self._db.execute(
                "SELECT payload FROM offline_decisions WHERE reported_at IS NULL"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [OfflineDecision.model_validate_json(row[0]) for row in rows]

    def mark_reported(self, event_ids: list[UUID]) -> None:
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "UPDATE offline_decisions SET reported_at = ? WHERE event_id = ?",
                    [(now, str(event_id)) for event_id in event_ids],
                )
                # Reported decisions are kept a while for `outbox`-style inspection, then go.
                self._db.execute(
                    "DELETE FROM offline_decisions WHERE reported_at IS NOT NULL"
                    " AND reported_at < ?",
                    (now - self._keep_s,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def stats(self) -> JournalStats:
        with self._lock:
            total, unreported = self._db.execute(
                "SELECT COUNT(*), COUNT(*) - COUNT(reported_at) FROM offline_decisions"
            ).fetchone()
        return JournalStats(int(total), int(unreported or 0))

    def close(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

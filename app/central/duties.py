"""Duties that must run on exactly one central instance at a time.

On PostgreSQL the instance holding a session-level advisory lock is the one that works;
the others keep trying, so when it dies its lock goes with its connection and another
instance takes over within one interval. On SQLite there is only one instance.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from sqlalchemy import Connection, text

from app.central.cameras import service as cameras
from app.central.clock import utcnow
from app.central.commands import service as commands
from app.central.db import Database
from app.central.events import service as events
from app.central.sessions import service as sessions
from app.central.settings import Settings

log = logging.getLogger(__name__)

ADVISORY_KEY = 0x7061726B  # "park"


class Duties:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="central-duties", daemon=True)
        self._lock_conn: Connection | None = None
        self.is_leader = False
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._release()

    def _release(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):  # the connection may already be gone
                # Invalidate: really close it, so the session-level lock dies with it
                # instead of living on in the pool.
                self._lock_conn.invalidate()
                self._lock_conn.close()
            self._lock_conn = None
        self.is_leader = False

    def _hold_lock(self) -> bool:
        if not self._db.is_postgres:
            return True
        try:
            if self._lock_conn is None:
                self._lock_conn = self._db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
                got = self._lock_conn.scalar(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}
                )
                if not got:
                    self._release()
                    return False
            else:
                self._lock_conn.execute(text("SELECT 1"))  # still alive, still ours
            return True
        except Exception as error:
            log.warning("duties: lost the database connection: %s", error)
            self._release()
            return False

    def run_once(self) -> None:
        now = utcnow()
        with self._db.session() as db:
            changed = cameras.mark_offline_cameras(
                db, now=now, offline_after_s=self._settings.camera_offline_after_s
            )
            dropped = events.drop_old_snapshots(
                db, now=now, retention_days=self._settings.snapshot_retention_days
            )
            expired = len(commands.expire(db, now=now))
            overstays = sessions.flag_overstays(db, now=now)
            db.commit()
        self.runs += 1
        if changed or dropped or expired or overstays:
            log.info(
                "duties ran",
                extra={"cameras_offline": changed, "snapshots_dropped": dropped,
                       "commands_expired": expired, "overstays_flagged": overstays},
            )  # fmt: skip

    def _run(self) -> None:
        while not self._stop.is_set():
            self.is_leader = self._hold_lock()
            if self.is_leader:
                try:
                    self.run_once()
                except Exception as error:
                    log.warning("duties failed: %s", error)
            self._stop.wait(self._settings.duty_interval_s)

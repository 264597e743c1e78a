"""Duties that must run on exactly one central instance at a time.

On PostgreSQL the instance holding a session-level advisory lock is the one that works;
the others keep trying, so when it dies its lock goes with its connection and another
instance takes over within one interval. On SQLite there is only one instance.

A leader cut off from the database without its connection closing (the link cut, the host
crashed) leaves a server session behind that holds the lock until TCP notices, which without
keepalives is hours. The leader touches its lock connection once per tick; a standby that finds
the lock held by a session silent for ``duty_takeover_after_s`` ends that session
(``pg_terminate_backend``, allowed between sessions of one database role) and takes the lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from sqlalchemy import Connection, text

from app.central.cameras import service as cameras
from app.central.clock import utcnow
from app.central.commands import service as commands
from app.central.db import Database
from app.central.metrics import (
    DUTIES_LAST_RUN,
    DUTIES_LEADER,
    DUTIES_TAKEOVERS,
    RETENTION_ANONYMISED,
    RETENTION_DELETED,
)
from app.central.privacy import retention
from app.central.sessions import service as sessions
from app.central.settings import Settings

log = logging.getLogger(__name__)

ADVISORY_KEY = 0x7061726B  # "park"

# The session holding the duties' lock (a bigint key below 2^32: classid 0, objid the key,
# objsubid 1) and how long it has been idle since its last statement.
_HOLDER = text(
    "SELECT a.pid, a.state, extract(epoch FROM clock_timestamp() - a.state_change),"
    " host(a.client_addr)"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0"
    " AND l.objid = CAST(:k AS oid) AND l.objsubid = 1"
)


class Duties:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="central-duties", daemon=True)
        self._lock_conn: Connection | None = None
        self.is_leader = False
        self.runs = 0
        self._retention_due = 0.0  # monotonic time of the next retention run; 0: at once
        self.last_retention: retention.RetentionReport | None = None

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
                got = self._try_lock(self._lock_conn)
                if not got and self._end_silent_holder(self._lock_conn):
                    got = self._try_lock(self._lock_conn)
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

    @staticmethod
    def _try_lock(conn: Connection) -> bool:
        return bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}))

    def _end_silent_holder(self, conn: Connection) -> bool:
        """Ends the lock holder's session when it has been idle past the takeover time (its
        central stopped ticking: gone, or cut off). True when one was ended."""
        row = conn.execute(_HOLDER, {"k": ADVISORY_KEY}).first()
        if row is None:
            return False  # released between the try and the look: the next try takes it
        pid, state, silent_s, client = row
        if state != "idle" or silent_s is None or silent_s < self._settings.duty_takeover_after_s:
            return False
        ended = bool(conn.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}))
        log.warning(
            "duties: the leader's session was silent, ended it to take over",
            extra={"holder_pid": pid, "holder_client": client,
                   "silent_s": round(float(silent_s), 1), "ended": ended},
        )  # fmt: skip
        if ended:
            DUTIES_TAKEOVERS.inc()
        return ended

    def run_once(self) -> None:
        now = utcnow()
        with self._db.session() as db:
            changed = cameras.mark_offline_cameras(
                db, now=now, offline_after_s=self._settings.camera_offline_after_s
            )
            expired = len(commands.expire(db, now=now))
            overstays = sessions.flag_overstays(db, now=now)
            db.commit()
        if time.monotonic() >= self._retention_due:
            self.run_retention()
        self.runs += 1
        if changed or expired or overstays:
            log.info(
                "duties ran",
                extra={"cameras_offline": changed, "commands_expired": expired,
                       "overstays_flagged": overstays},
            )  # fmt: skip

    def run_retention(self) -> retention.RetentionReport:
        """Deletes what is past its retention (batches of one transaction each). A run that
        left work undone (``retention_max_batches`` or its time budget) is followed by another
        at the next tick."""
        with self._db.session() as db:
            # At most a third of a tick: the other duties (command expiry) keep their pace.
            budget = max(1.0, self._settings.duty_interval_s / 3)
            policy = retention.RetentionPolicy.from_settings(self._settings, time_budget_s=budget)
            report = retention.purge(db, now=utcnow(), policy=policy)
        for kind, count in report.deleted.items():
            if count:
                RETENTION_DELETED.labels(kind=kind).inc(count)
        for kind, count in report.anonymised.items():
            if count:
                RETENTION_ANONYMISED.labels(kind=kind).inc(count)
        self._retention_due = (
            0.0 if report.unfinished else time.monotonic() + self._settings.retention_interval_s
        )
        self.last_retention = report
        if report.total:
            log.info(
                "retention ran",
                extra={"deleted": {k: v for k, v in report.deleted.items() if v},
                       "anonymised": {k: v for k, v in report.anonymised.items() if v},
                       "batches": report.batches, "unfinished": report.unfinished},
            )  # fmt: skip
        return report

    def _run(self) -> None:
        while not self._stop.is_set():
            self.is_leader = self._hold_lock()
            DUTIES_LEADER.set(1 if self.is_leader else 0)
            if self.is_leader:
                try:
                    self.run_once()
                except Exception as error:
                    log.warning("duties failed: %s", error)
                else:
                    DUTIES_LAST_RUN.set(time.time())
            self._stop.wait(self._settings.duty_interval_s)

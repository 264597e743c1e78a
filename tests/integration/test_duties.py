"""Single-instance duties: one leader via an advisory lock; offline detection; retention."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.central.cameras.models import Camera
from app.central.core.events import Snapshot
from app.central.core.identity import CameraIdentity
from app.central.db import Database
from app.central.duties import ADVISORY_KEY, Duties
from app.central.events.service import IngestPolicy, ingest
from app.central.sessions.models import ParkingSession
from app.central.sessions.service import void_session
from app.contract import PlateEvent
from tests.conftest import build_world, event_body, make_settings


def wait_until_ran(duties: Duties, what: str, timeout_s: float = 10) -> float:
    """Seconds until ``duties`` finished a round; fails with ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while duties.runs == 0:
        assert time.monotonic() - started < timeout_s, what
        time.sleep(0.05)
    return time.monotonic() - started


def test_only_one_instance_runs_duties_and_the_other_takes_over(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fresh_pg_url, duty_interval_s=0.2)
    db_a, db_b = Database(settings), Database(settings)
    a, b = Duties(db_a, settings), Duties(db_b, settings)
    a.start()
    wait_until_ran(a, "the first instance never ran the duties")
    b.start()
    time.sleep(1.0)
    assert a.is_leader and not b.is_leader
    assert b.runs == 0
    a.stop()  # instance A goes away: its lock goes with its connection
    wait_until_ran(b, "standby never took over the duties")
    b.stop()
    db_a.dispose()
    db_b.dispose()


def test_a_live_leader_is_never_displaced_but_a_silent_one_is(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """A leader that ticks keeps the duties however long it leads; a session that holds the
    lock and stays silent past the takeover time (a central cut off without its connection
    closing) is ended by a standby, which then runs the duties."""
    settings = make_settings(tmp_path, fresh_pg_url, duty_interval_s=0.2, duty_takeover_after_s=1.0)
    db_a, db_b = Database(settings), Database(settings)
    a, b = Duties(db_a, settings), Duties(db_b, settings)
    a.start()
    wait_until_ran(a, "the first instance never ran the duties")
    b.start()
    time.sleep(3.0)  # three takeover times of a leader ticking every 0.2 s
    assert a.is_leader and not b.is_leader and b.runs == 0
    b.stop()
    a.stop()

    # A holder that took the lock and then went quiet: a raw session, like a cut-off central's.
    holder = db_a.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + 10  # the stopped leader's session ends asynchronously
    while not holder.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}):
        assert time.monotonic() < deadline, "the stopped leader's lock was never released"
        time.sleep(0.05)
    c = Duties(db_b, settings)
    started = time.monotonic()
    c.start()
    wait_until_ran(c, "the standby never took the duties from a silent holder", 15)
    took_s = time.monotonic() - started
    assert took_s >= 0.5, "the holder was ended before it had been silent long"
    with pytest.raises(DBAPIError):
        holder.execute(text("SELECT 1"))  # its session was ended
    c.stop()
    holder.invalidate()
    db_a.dispose()
    db_b.dispose()


def test_takeover_time_must_cover_three_ticks(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="three duty ticks"):
        make_settings(tmp_path, "sqlite://", duty_interval_s=60, duty_takeover_after_s=90)


def test_offline_detection_and_snapshot_retention(fresh_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, fresh_url, camera_offline_after_s=60, snapshot_retention_days=7
    )
    database = Database(settings)
    jpeg = "/9j/4AAQ/9k="  # ff d8 ff e0 ... ff d9
    with database.session() as db:
        build_world(db)
        camera = db.get(Camera, "lane-in")
        assert camera is not None
        camera.online = True
        camera.last_heartbeat_at = datetime.now(UTC) - timedelta(minutes=5)
        old = PlateEvent.model_validate(
            event_body(
                "lane-in",
                "51F-123.45",
                at=datetime.now(UTC) - timedelta(days=10),
                snapshot_b64=jpeg,
            )
        )
        ingest(
            db,
            camera=CameraIdentity(camera.id, camera.lot_id, camera.direction, camera.created_at),
            event=old,
            policy=IngestPolicy(0.5, "UTC"),
            now=datetime.now(UTC) - timedelta(days=10),
        )
        db.commit()
    duties = Duties(database, settings)
    duties.run_once()
    with database.session() as db:
        camera = db.get(Camera, "lane-in")
        assert camera is not None and camera.online is False
        # The entry's picture is older than the bound, but its session is open: it stays.
        assert db.scalar(select(func.count()).select_from(Snapshot)) == 1
        session_id = db.scalar(select(ParkingSession.id))
        assert session_id is not None
        void_session(db, session_id=session_id, actor="admin", reason="phantom read")
        db.commit()
    duties.run_retention()
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Snapshot)) == 0
    database.dispose()

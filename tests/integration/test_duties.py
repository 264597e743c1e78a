"""Single-instance duties: one leader via an advisory lock; offline detection; retention."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from app.central.cameras.models import Camera
from app.central.core.events import Snapshot
from app.central.core.identity import CameraIdentity
from app.central.db import Database
from app.central.duties import Duties
from app.central.events.service import IngestPolicy, ingest
from app.central.sessions.models import ParkingSession
from app.central.sessions.service import void_session
from app.contract import PlateEvent
from tests.conftest import build_world, event_body, make_settings


def test_only_one_instance_runs_duties_and_the_other_takes_over(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fresh_pg_url, duty_interval_s=0.2)
    db_a, db_b = Database(settings), Database(settings)
    a, b = Duties(db_a, settings), Duties(db_b, settings)
    a.start()
    deadline = time.monotonic() + 10
    while a.runs == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    b.start()
    time.sleep(1.0)
    assert a.is_leader and not b.is_leader
    assert b.runs == 0
    a.stop()  # instance A goes away: its lock goes with its connection
    deadline = time.monotonic() + 10
    while b.runs == 0:
        assert time.monotonic() < deadline, "standby never took over the duties"
        time.sleep(0.05)
    b.stop()
    db_a.dispose()
    db_b.dispose()


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

"""``parking-central`` subcommands against SQLite and PostgreSQL, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.central.cameras.service import hash_api_key, record_heartbeat
from app.contract import CameraHeartbeat


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.central.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_cli_migrate_user_camera(fresh_url: str, tmp_path: Path) -> None:
    env = {"PARKING_DATABASE_URL": fresh_url, "PARKING_DATA_DIR": str(tmp_path)}
    assert run(["migrate"], env).returncode == 0
    made = run(["create-user", "alice", "--role", "manager"], env, stdin="s3cret-enough\n")
    assert made.returncode == 0, made.stderr
    again = run(["create-user", "alice", "--role", "manager"], env, stdin="s3cret-enough\n")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    short = run(["create-user", "bob", "--role", "guard"], env, stdin="short\n")
    assert short.returncode == 2
    assert "at least 8" in short.stderr

    camera = run(["create-camera", "gate-9-in", "--lot", "north", "--direction", "entry"], env)
    assert camera.returncode == 0, camera.stderr
    lines = camera.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pk_")  # only the key on stdout
    engine = create_engine(fresh_url)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT api_key_hash FROM cameras WHERE id='gate-9-in'")
        ).scalar()
        lot = conn.execute(text("SELECT capacity FROM lots WHERE id='north'")).scalar()
        role = conn.execute(text("SELECT role FROM operators WHERE username='alice'")).scalar()
    engine.dispose()
    assert stored == hash_api_key(lines[0])
    assert lines[0] not in (stored or "")
    assert lot is not None
    assert role == "manager"


def test_cli_camera_status_shows_the_last_heartbeat(fresh_url: str, tmp_path: Path) -> None:
    env = {"PARKING_DATABASE_URL": fresh_url, "PARKING_DATA_DIR": str(tmp_path)}
    assert run(["migrate"], env).returncode == 0
    made = run(["create-camera", "gate-4-out", "--lot", "north", "--direction", "exit"], env)
    assert made.returncode == 0, made.stderr

    never = run(["camera-status", "gate-4-out"], env)
    assert never.returncode == 0, never.stderr
    status = json.loads(never.stdout)
    assert status["id"] == "gate-4-out"
    assert status["last_heartbeat_at"] is None and status["health"] == {}
    assert status["online"] is False

    sent_at = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    beat = CameraHeartbeat(sent_at=sent_at, agent_version="9.9.9", uptime_s=4.0, outbox_depth=3)
    engine = create_engine(fresh_url)
    with Session(engine) as db:
        record_heartbeat(db, camera_id="gate-4-out", heartbeat=beat, now=datetime.now(UTC))
        db.commit()
    engine.dispose()
    after = json.loads(run(["camera-status", "gate-4-out"], env).stdout)
    assert after["online"] is True
    assert 0 <= after["seconds_since_heartbeat"] < 60
    assert datetime.fromisoformat(after["last_heartbeat_at"]) <= datetime.now(UTC)
    # the edge's own report, on the edge's clock: what a rollout compares with its restart
    assert datetime.fromisoformat(after["health"]["sent_at"]) == sent_at
    assert after["health"]["agent_version"] == "9.9.9"
    assert after["health"]["outbox_depth"] == 3

    unknown = run(["camera-status", "gate-nowhere"], env)
    assert unknown.returncode == 2
    assert "does not exist" in unknown.stderr


def test_cli_names_a_bad_setting(tmp_path: Path) -> None:
    bad = run(["migrate"], {"PARKING_LOG_LEVEL": "LOUD", "PARKING_DATA_DIR": str(tmp_path)})
    assert bad.returncode == 2
    assert "log_level" in bad.stderr

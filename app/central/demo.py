"""Seed data for the one-command demo: a lot, its lanes, tariffs and operator accounts.

Idempotent: running it again changes nothing and prints the same credentials. Passwords and
camera keys are generated on first run and kept in the data directory (mode 0600), never in
the repository.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.central.cameras import service as cameras
from app.central.cameras.models import Camera
from app.central.core.lots import ensure_lot
from app.central.operators import service as operators
from app.central.operators.models import Operator
from app.central.tariffs.service import put_tariff

DEMO_LOT = "demo-lot"
# gate-1: simulated vehicles; gate-2: real plate pictures through the real reader, the exit
# lane replaying the same pictures later (the vehicles that came in leave).
DEMO_CAMERAS = (
    ("gate-1-in", "entry"),
    ("gate-1-out", "exit"),
    ("gate-2-in", "entry"),
    ("gate-2-out", "exit"),
)
# The cashier account is played by app/central/demo_cashier.py.
DEMO_USERS = (("admin", "admin"), ("manager", "manager"), ("guard", "guard"), ("cashier", "guard"))
# Vietnamese-style prices in VND. The free minutes are short so that a demo's stays of a few
# minutes pay something: about half of them are held at the exit until the cashier takes it.
DEMO_TARIFFS = (
    ("car", 2, 25_000, 200_000, 50_000),
    ("motorbike", 2, 5_000, 30_000, 10_000),
    ("unknown", 2, 25_000, 200_000, 50_000),
)
DEMO_CAPACITY = 120


def seed(db: Session, *, data_dir: Path) -> dict[str, Any]:
    creds_file = data_dir / "demo-credentials.json"
    creds: dict[str, Any] = json.loads(creds_file.read_text()) if creds_file.exists() else {}
    creds.setdefault("users", {})
    creds.setdefault("cameras", {})
    lot = ensure_lot(db, lot_id=DEMO_LOT, name="Demo lot", capacity=DEMO_CAPACITY)
    lot.capacity = DEMO_CAPACITY
    lot.lost_ticket_fee = 100_000
    for vehicle_type, free, rate, cap, night in DEMO_TARIFFS:
        put_tariff(
            db,
            lot_id=DEMO_LOT,
            vehicle_type=vehicle_type,
            free_minutes=free,
            hourly_rate=rate,
            daily_cap=cap,
            overnight_fee=night,
        )
    for username, role in DEMO_USERS:
        if db.query(Operator).filter_by(username=username).first() is None:
            password = secrets.token_urlsafe(9)
            operators.create_operator(
                db, username=username, password=password, role=role, actor="demo"
            )
            creds["users"][username] = {"password": password, "role": role}
    for camera_id, direction in DEMO_CAMERAS:
        if db.get(Camera, camera_id) is None:
            _, key = cameras.create_camera(
                db, camera_id=camera_id, lot_id=DEMO_LOT, direction=direction, actor="demo"
            )
            creds["cameras"][camera_id] = {"api_key": key, "direction": direction}
    db.commit()
    data_dir.mkdir(parents=True, exist_ok=True)
    creds_file.touch(mode=0o600)
    creds_file.write_text(json.dumps(creds, indent=2))
    return creds

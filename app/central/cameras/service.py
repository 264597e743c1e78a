"""Camera registry: API keys (stored hashed), heartbeats, online/offline, reconciliation."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from app.central.audit import service as audit
from app.central.cameras.models import Camera
from app.central.clock import as_utc
from app.central.core.events import PlateEvent
from app.central.core.identity import CameraIdentity
from app.central.core.lots import ensure_lot
from app.central.errors import Conflict, InvalidInput, NotFound
from app.central.live.service import announce
from app.contract import ID_PATTERN, CameraDirection, CameraHeartbeat

KEY_PREFIX = "pk_"


def hash_api_key(api_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_camera(
    db: Session,
    *,
    camera_id: str,
    lot_id: str,
    direction: str,
    name: str = "",
    actor: str = "cli",
) -> tuple[Camera, str]:
    """Register a camera (and its lot if new), committed with its audit entry. Returns the
    camera and its API key, shown once."""
    if not re.fullmatch(ID_PATTERN, camera_id):
        raise InvalidInput(
            "camera id must be 1-63 lower-case letters, digits, '_' or '-'", field="camera_id"
        )
    if direction not in {d.value for d in CameraDirection}:
        raise InvalidInput("direction must be entry or exit", field="direction")
    if db.get(Camera, camera_id) is not None:
        raise Conflict(f"camera {camera_id!r} already exists", field="camera_id")
    ensure_lot(db, lot_id=lot_id)
    api_key = new_api_key()
    camera = Camera(
        id=camera_id,
        lot_id=lot_id,
        direction=direction,
        name=name or camera_id,
        api_key_hash=hash_api_key(api_key),
    )
    audit.record_change(
        db,
        actor=actor,
        action="camera.create",
        target_type="camera",
        target_id=camera_id,
        details={"lot_id": lot_id, "direction": direction},
        added=camera,
    )
    return camera, api_key


def rotate_key(db: Session, *, camera_id: str, actor: str) -> str:
    camera = get_camera(db, camera_id=camera_id)
    api_key = new_api_key()
    camera.api_key_hash = hash_api_key(api_key)
    audit.record_change(
        db, actor=actor, action="camera.rotate_key", target_type="camera", target_id=camera_id
    )
    return api_key


def get_camera(db: Session, *, camera_id: str) -> Camera:
    camera = db.get(Camera, camera_id)
    if camera is None:
        raise NotFound(f"camera {camera_id!r} does not exist")
    return camera


_BY_KEY = select(Camera.id, Camera.lot_id, Camera.direction, Camera.created_at).where(
    Camera.api_key_hash == bindparam("key_hash"), Camera.enabled.is_(True)
)


def camera_for_key(db: Session, *, api_key: str) -> CameraIdentity | None:
    row = db.execute(_BY_KEY, {"key_hash": hash_api_key(api_key)}).one_or_none()
    if row is None:
        return None
    return CameraIdentity(row.id, row.lot_id, row.direction, as_utc(row.created_at))


def record_heartbeat(
    db: Session, *, camera_id: str, heartbeat: CameraHeartbeat, now: datetime
) -> None:
    camera = get_camera(db, camera_id=camera_id)
    camera.last_heartbeat_at = now
    camera.last_health = heartbeat.model_dump(mode="json")
    if not camera.online:
        camera.online = True
        announce(db, kind="camera_online", data={"camera_id": camera.id})
    announce(
        db,
        kind="camera_heartbeat",
        data={"camera_id": camera.id, "outbox_depth": heartbeat.outbox_depth},
    )


def is_online(camera: Camera, *, now: datetime, offline_after_s: int) -> bool:
    return camera.last_heartbeat_at is not None and now - camera.last_heartbeat_at <= timedelta(
        seconds=offline_after_s
    )


def _status(camera: Camera, *, now: datetime, offline_after_s: int) -> dict[str, Any]:
    """A camera's state as its last heartbeat left it (the registry list and ``camera-status``)."""
    last = camera.last_heartbeat_at
    return {
        "id": camera.id,
        "enabled": camera.enabled,
        "online": is_online(camera, now=now, offline_after_s=offline_after_s),
        "last_heartbeat_at": last,
        "seconds_since_heartbeat": (now - last).total_seconds() if last else None,
        "health": camera.last_health or {},
    }


def camera_status(
    db: Session, *, camera_id: str, now: datetime, offline_after_s: int
) -> dict[str, Any]:
    """One camera's registry entry as a rollout checks it: its last heartbeat (when central
    took it, and the edge's own report in it: ``sent_at`` on the edge's clock, the agent's
    version, its outbox), without the reconciliation's scan of the events."""
    status = _status(get_camera(db, camera_id=camera_id), now=now, offline_after_s=offline_after_s)
    last = status["last_heartbeat_at"]
    status["last_heartbeat_at"] = as_utc(last).isoformat() if last else None
    return status


def events_received(db: Session) -> dict[str, tuple[int, int]]:
    """Per camera: events received in all, and those received by its last heartbeat (the
    figure comparable with the heartbeat's ``captured_total``)."""
    by_heartbeat = func.sum(case((PlateEvent.received_at <= Camera.last_heartbeat_at, 1), else_=0))
    rows = db.execute(
        select(PlateEvent.camera_id, func.count(), by_heartbeat)
        .join(Camera, Camera.id == PlateEvent.camera_id)
        .group_by(PlateEvent.camera_id)
    ).all()
    return {camera_id: (total, int(upto or 0)) for camera_id, total, upto in rows}


def camera_views(db: Session, *, now: datetime, offline_after_s: int) -> list[dict[str, Any]]:
    """Every camera with its status and reconciliation (captured at the edge vs received)."""
    received = events_received(db)
    views = []
    for camera in db.scalars(select(Camera).order_by(Camera.id)):
        status = _status(camera, now=now, offline_after_s=offline_after_s)
        captured = status["health"].get("captured_total")
        total, by_heartbeat = received.get(camera.id, (0, 0))
        views.append(
            {
                **status,
                "lot_id": camera.lot_id,
                "direction": camera.direction,
                "name": camera.name,
                "captured_total": captured,
                "received_total": total,
                # Captured at the edge but not at central as of the last heartbeat: events
                # still in the edge's outbox, or lost. Falls back to 0 when the link is healthy.
                "reconciliation_gap": (
                    captured - by_heartbeat if isinstance(captured, int) else None
                ),
            }
        )
    return views


def mark_offline_cameras(db: Session, *, now: datetime, offline_after_s: int) -> list[str]:
    """Flip cameras whose heartbeat is too old to offline and announce each change once."""
    cutoff = now - timedelta(seconds=offline_after_s)
    changed = []
    for camera in db.scalars(select(Camera).where(Camera.online.is_(True))):
        if camera.last_heartbeat_at is None or camera.last_heartbeat_at < cutoff:
            camera.online = False
            changed.append(camera.id)
            announce(db, kind="camera_offline", data={"camera_id": camera.id})
    db.flush()
    return changed

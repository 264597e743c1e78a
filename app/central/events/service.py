"""Idempotent ingest of plate events.

The event row (primary key ``event_id``) and everything the event causes (session opened or
closed, anomalies, the stored answer) commit in one transaction. A retry of the same
``event_id`` finds the row and gets the stored answer back, unchanged; a concurrent duplicate
collides on the primary key, rolls back, and then gets the winner's answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.central.cameras.service import CameraIdentity
from app.central.clock import utcnow
from app.central.errors import Conflict
from app.central.events.models import PlateEvent as PlateEventRow
from app.central.events.models import Snapshot
from app.central.live.service import announce
from app.central.lots.models import Lot
from app.central.sessions import service as sessions
from app.contract import CameraDirection, EventAck, PlateEvent, normalize_plate

log = logging.getLogger(__name__)

# How many times a transaction that lost a race (unique open session) is replayed.
RACE_RETRIES = 3


@dataclass(frozen=True)
class IngestPolicy:
    low_confidence: float
    timezone: str


@dataclass(frozen=True)
class Ingested:
    ack: dict[str, Any]
    replay: bool


_STORED = select(PlateEventRow.camera_id, PlateEventRow.ack).where(
    PlateEventRow.event_id == bindparam("event_id")
)


def _stored_ack(db: Session, *, event_id: UUID, camera: CameraIdentity) -> dict[str, Any] | None:
    row = db.execute(_STORED, {"event_id": event_id}).one_or_none()
    if row is None:
        return None
    if row.camera_id != camera.id:
        raise Conflict(f"event_id {event_id} was already used by another camera", field="event_id")
    stored: dict[str, Any] = row.ack
    return stored


def _apply(
    db: Session, *, camera: CameraIdentity, event: PlateEvent, policy: IngestPolicy, now: datetime
) -> dict[str, Any]:
    """Add one new event and its effects to the open transaction; return its answer."""
    lot = db.get(Lot, camera.lot_id)
    assert lot is not None  # foreign key
    sighting = sessions.Sighting(
        event_id=event.event_id,
        camera_id=camera.id,
        lot=lot,
        plate=event.plate,
        plate_normalized=event.plate_normalized,
        candidates=tuple(
            p
            for p in dict.fromkeys(normalize_plate(c.plate) for c in event.candidates)
            if p != event.plate_normalized
        ),
        confidence=event.confidence,
        vehicle_type=event.vehicle_type.value,
        captured_at=event.captured_at,
    )
    if camera.direction == CameraDirection.ENTRY:
        outcome = sessions.decide_entry(db, sighting=sighting, low_confidence=policy.low_confidence)
    else:
        outcome = sessions.decide_exit(
            db, sighting=sighting, low_confidence=policy.low_confidence, tz=policy.timezone
        )
    ack = EventAck(
        event_id=event.event_id,
        accepted_at=now,
        session_id=outcome.session.id if outcome.session else None,
        decision=outcome.decision,
        anomaly=outcome.anomaly,
    ).model_dump(mode="json")
    snapshot = event.snapshot_bytes()
    # Core INSERTs: the row is never read back here, so the ORM's unit of work is pure cost
    # on the hottest path. A duplicate event_id fails right here (primary key).
    db.execute(
        insert(PlateEventRow).values(
            event_id=event.event_id,
            camera_id=camera.id,
            lot_id=lot.id,
            direction=camera.direction,
            captured_at=event.captured_at,
            received_at=now,
            plate=event.plate,
            plate_normalized=event.plate_normalized,
            confidence=event.confidence,
            vehicle_type=event.vehicle_type.value,
            candidates=[c.model_dump() for c in event.candidates],
            session_id=ack["session_id"],
            ack=ack,
            has_snapshot=snapshot is not None,
        )
    )
    if snapshot is not None:
        db.execute(insert(Snapshot).values(event_id=event.event_id, jpeg=snapshot, created_at=now))
    announce(
        db,
        kind="plate_event",
        data={
            "event_id": str(event.event_id),
            "camera_id": camera.id,
            "lot_id": lot.id,
            "direction": camera.direction,
            "plate": event.plate,
            "confidence": event.confidence,
            "captured_at": event.captured_at.isoformat(),
            "has_snapshot": snapshot is not None,
            "decision": ack["decision"],
            "session_id": ack["session_id"],
            "anomaly": outcome.anomaly,
        },
    )
    return ack


def ingest(
    db: Session,
    *,
    camera: CameraIdentity,
    event: PlateEvent,
    policy: IngestPolicy,
    now: datetime | None = None,
) -> Ingested:
    """Store one event and decide the gate, exactly once per ``event_id``. Commits."""
    if event.camera_id != camera.id:
        raise Conflict("camera_id does not match the API key's camera", field="camera_id")
    for attempt in range(RACE_RETRIES + 1):
        # Optimistic: new events are the rule, so the first attempt does not look first; a
        # retry collides on the primary key (or the open-session index) and comes back here.
        if attempt:
            stored = _stored_ack(db, event_id=event.event_id, camera=camera)
            if stored is not None:
                db.rollback()
                return Ingested(stored, replay=True)
        try:
            ack = _apply(db, camera=camera, event=event, policy=policy, now=now or utcnow())
            db.commit()
            return Ingested(ack, replay=False)
        except IntegrityError:
            # A concurrent duplicate of this event, or a concurrent entry of the same plate.
            db.rollback()
            if attempt == RACE_RETRIES:
                raise
    raise AssertionError("unreachable")


def ingest_batch(
    db: Session,
    *,
    camera: CameraIdentity,
    events: list[PlateEvent],
    policy: IngestPolicy,
    now: datetime | None = None,
) -> list[Ingested]:
    """A backlog in capture order, one commit; falls back to one-by-one if a race is lost."""
    for event in events:
        if event.camera_id != camera.id:
            raise Conflict("camera_id does not match the API key's camera", field="camera_id")
    now = now or utcnow()
    try:
        # No autoflush before every query: the session logic flushes what it must read back.
        with db.no_autoflush:
            results = _apply_in_order(db, camera=camera, events=events, policy=policy, now=now)
        db.commit()
        return results
    except IntegrityError:
        db.rollback()
    return [ingest(db, camera=camera, event=event, policy=policy, now=now) for event in events]


def _apply_in_order(
    db: Session,
    *,
    camera: CameraIdentity,
    events: list[PlateEvent],
    policy: IngestPolicy,
    now: datetime,
) -> list[Ingested]:
    results: list[Ingested] = []
    seen: dict[UUID, dict[str, Any]] = {}
    for event in events:
        stored = seen.get(event.event_id) or _stored_ack(db, event_id=event.event_id, camera=camera)
        if stored is not None:
            results.append(Ingested(stored, replay=True))
            continue
        ack = _apply(db, camera=camera, event=event, policy=policy, now=now)
        seen[event.event_id] = ack
        results.append(Ingested(ack, replay=False))
    return results


def get_snapshot(db: Session, *, event_id: UUID) -> bytes | None:
    return db.scalar(select(Snapshot.jpeg).where(Snapshot.event_id == event_id))


def list_events(
    db: Session, *, camera_id: str | None = None, limit: int = 50, offset: int = 0
) -> list[PlateEventRow]:
    query = select(PlateEventRow).order_by(PlateEventRow.received_at.desc())
    if camera_id:
        query = query.where(PlateEventRow.camera_id == camera_id)
    return list(db.scalars(query.limit(limit).offset(offset)))


def drop_old_snapshots(db: Session, *, now: datetime, retention_days: int) -> int:
    """Retention: snapshots older than the limit go; the event rows stay."""
    cutoff = now - timedelta(days=retention_days)
    result = db.execute(delete(Snapshot).where(Snapshot.created_at < cutoff))
    count: int = getattr(result, "rowcount", 0) or 0
    return count

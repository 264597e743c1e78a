"""Idempotent ingest of plate events.

The event row (primary key ``event_id``) and everything the event causes (session opened or
closed, anomalies, the stored answer) commit in one transaction, together with the other events
of the same batch: a backlog posted to ``/events/batch``, or the single-event requests that
arrived together (group commit, ``combiner.py``). Decisions are made in order by
``sessions.ledger.Ledger`` with Core statements, as if each event had committed alone. A retry of
the same ``event_id`` finds the row and gets the stored answer back, unchanged; a concurrent
duplicate collides on the primary key, rolls back, and then gets the winner's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.central.clock import utcnow
from app.central.core.events import PlateEvent as PlateEventRow
from app.central.core.events import Snapshot
from app.central.core.identity import CameraIdentity
from app.central.db import is_db_unavailable
from app.central.errors import Conflict, InvalidInput
from app.central.sessions.ledger import Ledger, Outcome, Sighting
from app.contract import CameraDirection, EventAck, PlateEvent, normalize_plate

log = logging.getLogger(__name__)

# An edge may capture a little before its camera is registered at central (installed and
# reading while its key is being made); further back than this the lane's clock is wrong.
REGISTRATION_SLACK = timedelta(days=1)

# How many times a transaction that lost a race (unique open session) is replayed.
RACE_RETRIES = 3

_EVENTS = cast(Table, PlateEventRow.__table__)
_SNAPSHOTS = cast(Table, Snapshot.__table__)


@dataclass(frozen=True)
class IngestPolicy:
    low_confidence: float
    timezone: str
    # No event older than this is taken (the edge's outbox keeps nothing longer either).
    max_event_age: timedelta = timedelta(days=30)


def check_capture_time(
    camera: CameraIdentity, event: PlateEvent, *, now: datetime, policy: IngestPolicy
) -> InvalidInput | None:
    """A capture time that cannot be right: older than the retention, or before the camera
    existed (beyond the clock skew allowed). The event is refused, its field named."""
    at = event.captured_at
    if at < now - policy.max_event_age:
        days = policy.max_event_age.days
        return InvalidInput(
            f"captured_at is more than {days} days ago; the lane's clock is wrong",
            field="captured_at",
        )
    if camera.registered_at is not None and at < camera.registered_at - REGISTRATION_SLACK:
        return InvalidInput(
            f"captured_at is before camera {camera.id} was registered "
            f"({camera.registered_at.isoformat()}); the lane's clock is wrong",
            field="captured_at",
        )
    return None


@dataclass(frozen=True)
class Ingested:
    ack: dict[str, Any]
    replay: bool


Item = tuple[CameraIdentity, PlateEvent]
Result = Ingested | Exception

_STORED = select(PlateEventRow.event_id, PlateEventRow.camera_id, PlateEventRow.ack).where(
    PlateEventRow.event_id.in_(bindparam("ids", expanding=True))
)
_INSERT_EVENTS = insert(_EVENTS)
_INSERT_SNAPSHOTS = insert(_SNAPSHOTS)


def _stored_acks(db: Session, ids: list[UUID]) -> dict[UUID, tuple[str, dict[str, Any]]]:
    return {row.event_id: (row.camera_id, row.ack) for row in db.execute(_STORED, {"ids": ids})}


def _sighting(camera: CameraIdentity, event: PlateEvent) -> Sighting:
    plate_n = event.plate_normalized
    return Sighting(
        event_id=event.event_id,
        camera_id=camera.id,
        lot_id=camera.lot_id,
        plate=event.plate,
        plate_normalized=plate_n,
        candidates=tuple(
            p
            for p in dict.fromkeys(normalize_plate(c.plate) for c in event.candidates)
            if p != plate_n
        ),
        confidence=event.confidence,
        vehicle_type=event.vehicle_type.value,
        captured_at=event.captured_at,
    )


def _apply(
    db: Session, items: list[Item], *, policy: IngestPolicy, now: datetime, look_first: bool
) -> list[Result]:
    """Add the events and their effects to the open transaction, in order; return each one's
    answer, or the domain error that concerns that event alone. Does not commit.

    An event_id seen before (stored, or earlier in ``items``) gets the first answer back; with
    ``look_first`` false the stored answers are not read (new events are the rule), and a
    retry collides on the primary key at the INSERT.
    """
    results: list[Result | _Same | None] = [None] * len(items)
    stored = _stored_acks(db, [e.event_id for _, e in items]) if look_first else {}
    ledger = Ledger(db, low_confidence=policy.low_confidence, tz=policy.timezone)
    ledger.prefetch(e.plate_normalized for c, e in items if c.direction == CameraDirection.ENTRY)
    first: dict[UUID, tuple[int, str]] = {}  # event_id -> (index, camera) of its first use
    decided: list[tuple[int, CameraIdentity, PlateEvent, Outcome]] = []
    for i, (camera, event) in enumerate(items):
        if event.camera_id != camera.id:
            results[i] = Conflict(
                "camera_id does not match the API key's camera", field="camera_id"
            )
            continue
        if event.event_id in stored:
            owner, ack = stored[event.event_id]
            results[i] = _replay(owner, ack, camera=camera, event_id=event.event_id)
            continue
        wrong_time = check_capture_time(camera, event, now=now, policy=policy)
        if wrong_time is not None:
            results[i] = wrong_time
            continue
        if event.event_id in first:
            index, owner = first[event.event_id]
            results[i] = _Same(index, owner)  # resolved below, once the first has its ack
            continue
        first[event.event_id] = (i, camera.id)
        outcome = ledger.decide(_sighting(camera, event), direction=camera.direction)
        ledger.note("plate_event", _plate_event_message(camera, event, outcome))
        decided.append((i, camera, event, outcome))
    ledger.flush()

    rows: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    for i, camera, event, outcome in decided:
        ack = EventAck(
            event_id=event.event_id,
            accepted_at=now,
            session_id=outcome.session.id if outcome.session else None,
            decision=outcome.decision,
            anomaly=outcome.anomaly,
        ).model_dump(mode="json")
        results[i] = Ingested(ack, replay=False)
        snapshot = event.snapshot_bytes()
        rows.append(
            {
                "event_id": event.event_id,
                "camera_id": camera.id,
                "lot_id": camera.lot_id,
                "direction": camera.direction,
                "captured_at": event.captured_at,
                "received_at": now,
                "plate": event.plate,
                "plate_normalized": event.plate_normalized,
                "confidence": event.confidence,
                "vehicle_type": event.vehicle_type.value,
                "candidates": [c.model_dump() for c in event.candidates],
                "session_id": ack["session_id"],
                "ack": ack,
                "has_snapshot": snapshot is not None,
            }
        )
        if snapshot is not None:
            snapshots.append({"event_id": event.event_id, "jpeg": snapshot, "created_at": now})
    conn = db.connection()
    # Core INSERTs (many rows, one statement): a duplicate event_id fails right here.
    if rows:
        conn.execute(_INSERT_EVENTS, rows if len(rows) > 1 else rows[0])
    if snapshots:
        conn.execute(_INSERT_SNAPSHOTS, snapshots if len(snapshots) > 1 else snapshots[0])
    ledger.announce()

    done: list[Result] = []
    for i, result in enumerate(results):
        if isinstance(result, _Same):
            original = results[result.index]
            assert isinstance(original, Ingested)
            owner_ok = result.camera_id == items[i][0].id
            done.append(
                Ingested(original.ack, replay=True)
                if owner_ok
                else _conflict_used(items[i][1].event_id)
            )
        else:
            assert result is not None
            done.append(result)
    return done


@dataclass(frozen=True)
class _Same:
    """A second use of an event_id within one transaction: the answer of item ``index``."""

    index: int
    camera_id: str


def _conflict_used(event_id: UUID) -> Conflict:
    return Conflict(f"event_id {event_id} was already used by another camera", field="event_id")


def _replay(owner: str, ack: dict[str, Any], *, camera: CameraIdentity, event_id: UUID) -> Result:
    if owner != camera.id:
        return _conflict_used(event_id)
    return Ingested(ack, replay=True)


def _plate_event_message(
    camera: CameraIdentity, event: PlateEvent, outcome: Outcome
) -> Callable[[], dict[str, Any]]:
    def data() -> dict[str, Any]:
        return {
            "event_id": str(event.event_id),
            "camera_id": camera.id,
            "lot_id": camera.lot_id,
            "direction": camera.direction,
            "plate": event.plate,
            "confidence": event.confidence,
            "captured_at": event.captured_at.isoformat(),
            "has_snapshot": event.snapshot_b64 is not None,
            "decision": outcome.decision.model_dump(mode="json"),
            "session_id": outcome.session.id if outcome.session else None,
            "anomaly": outcome.anomaly,
        }

    return data


def ingest_many(
    db: Session,
    items: list[Item],
    *,
    policy: IngestPolicy,
    now: datetime | None = None,
    strict: bool = False,
) -> list[Result]:
    """Store the events and decide their gates, exactly once per ``event_id``, in one
    transaction (commits). Returns, per item, its answer or the error that concerns it alone
    (``strict``: raises the first such error and writes nothing). Errors of the database
    itself are raised.

    A transaction that loses a race to another one (a concurrent duplicate, or a concurrent
    entry of the same plate) is rolled back and replayed: one event looks its id up first and
    tries again; several events are replayed one by one, so one event's trouble stays its own.
    """
    now = now or utcnow()
    try:
        results = _apply(db, items, policy=policy, now=now, look_first=len(items) > 1)
        if strict:
            _raise_first(db, results)
        db.commit()
        return results
    except IntegrityError:
        db.rollback()
    if len(items) > 1:
        return [_one(db, item, policy=policy, now=now, strict=strict) for item in items]
    for attempt in range(RACE_RETRIES):
        try:
            results = _apply(db, items, policy=policy, now=now, look_first=True)
            if strict:
                _raise_first(db, results)
            db.commit()
            return results
        except IntegrityError:
            db.rollback()
            if attempt == RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _raise_first(db: Session, results: list[Result]) -> None:
    for result in results:
        if isinstance(result, Exception):
            db.rollback()  # nothing half-written
            raise result


def _one(db: Session, item: Item, *, policy: IngestPolicy, now: datetime, strict: bool) -> Result:
    if strict:
        return ingest_many(db, [item], policy=policy, now=now, strict=True)[0]
    try:
        return ingest_many(db, [item], policy=policy, now=now)[0]
    except Exception as error:  # this event's own trouble; the database's is everyone's
        if is_db_unavailable(error):
            raise
        db.rollback()
        return error


def ingest(
    db: Session,
    *,
    camera: CameraIdentity,
    event: PlateEvent,
    policy: IngestPolicy,
    now: datetime | None = None,
) -> Ingested:
    """Store one event and decide the gate, exactly once per ``event_id``. Commits."""
    result = ingest_many(db, [(camera, event)], policy=policy, now=now, strict=True)[0]
    assert isinstance(result, Ingested)
    return result


def ingest_batch(
    db: Session,
    *,
    camera: CameraIdentity,
    events: list[PlateEvent],
    policy: IngestPolicy,
    now: datetime | None = None,
) -> list[Ingested]:
    """A backlog in capture order, one commit; all or nothing for the request's own errors."""
    for event in events:
        if event.camera_id != camera.id:
            raise Conflict("camera_id does not match the API key's camera", field="camera_id")
    results = ingest_many(db, [(camera, e) for e in events], policy=policy, now=now, strict=True)
    return [r for r in results if isinstance(r, Ingested)]


def get_snapshot(db: Session, *, event_id: UUID) -> bytes | None:
    return db.scalar(select(Snapshot.jpeg).where(Snapshot.event_id == event_id))


def list_events(
    db: Session, *, camera_id: str | None = None, limit: int = 50, offset: int = 0
) -> list[PlateEventRow]:
    query = select(PlateEventRow).order_by(PlateEventRow.received_at.desc())
    if camera_id:
        query = query.where(PlateEventRow.camera_id == camera_id)
    return list(db.scalars(query.limit(limit).offset(offset)))

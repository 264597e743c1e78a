"""Idempotent ingest of plate events.

The event row (primary key ``event_id``) and everything the event causes (session opened or
closed, anomalies, the stored answer) commit in one transaction, together with the other events
of the same batch: a backlog posted to ``/events/batch``, or the single-event requests that
arrived together (group commit, ``combiner.py``). Decisions are made in order by
``sessions.ledger.Ledger`` with Core statements, as if each event had committed alone. A retry of
the same ``event_id`` finds the row and gets the stored answer back, unchanged; a concurrent
duplicate collides on the primary key, rolls back, and then gets the winner's answer.

One batch in steps (``_apply``): ``triage`` (pure) sorts the events into another camera's,
replays of a stored answer, refused capture times, repeats within the batch and new ones;
``Ledger.ingest`` decides the new ones and writes all they cause; ``resolve_repeats`` (pure)
gives each repeat its first's answer. ``ingest_many`` commits, and is the only layer that
retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.bulk import among
from app.central.clock import utcnow
from app.central.core.events import PlateEvent as PlateEventRow
from app.central.core.events import Snapshot
from app.central.core.identity import CameraIdentity
from app.central.db import is_db_unavailable, lost_a_race
from app.central.errors import Conflict, DomainError, InvalidInput
from app.central.sessions.ledger import Ledger
from app.contract import PlateEvent

log = logging.getLogger(__name__)

# An edge may capture a little before its camera is registered at central (installed and
# reading while its key is being made); further back than this the lane's clock is wrong.
REGISTRATION_SLACK = timedelta(days=1)

# How many times a transaction that lost a race (unique open session) is replayed.
RACE_RETRIES = 3


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


# -- the camera-id rule: an event speaks for the camera whose key sent it --------------------


def owns(camera: CameraIdentity, event: PlateEvent) -> bool:
    """Whether ``camera`` (the API key's) may send ``event``: only with its own camera id."""
    return event.camera_id == camera.id


def not_owner() -> Conflict:
    return Conflict("camera_id does not match the API key's camera", field="camera_id")


def require_owner(camera: CameraIdentity, events: Iterable[PlateEvent]) -> None:
    """The doors (the single and the batch route) refuse, before anything is read or written,
    a request with any event of another camera (409, the field named)."""
    if not all(owns(camera, event) for event in events):
        raise not_owner()


# -- triage: what each incoming event is, before anything is decided -------------------------


@dataclass(frozen=True)
class Repeat:
    """A second use of an event_id within one batch: the answer of item ``first``, if sent by
    the same camera (``same_camera``), else a conflict."""

    first: int
    same_camera: bool


Stored = Mapping[UUID, tuple[str, dict[str, Any]]]  # event_id -> (camera, stored answer)
Verdict = Result | Repeat | None  # None: new, for the ledger to decide


def triage(
    items: Sequence[Item], *, stored: Stored, now: datetime, policy: IngestPolicy
) -> list[Verdict]:
    """Pure. For each event in order: another camera's (refused), a stored answer (replayed,
    or a conflict if another camera used the id), a capture time that cannot be right
    (refused), a repeat of an earlier new event of the batch, or new (None)."""
    verdicts: list[Verdict] = []
    first: dict[UUID, tuple[int, str]] = {}  # event_id -> (index, camera) of its new use
    for i, (camera, event) in enumerate(items):
        verdict: Verdict = None
        if not owns(camera, event):
            verdict = not_owner()
        elif event.event_id in stored:
            owner, ack = stored[event.event_id]
            verdict = Ingested(ack, replay=True) if owner == camera.id else _used(event.event_id)
        elif (wrong_time := check_capture_time(camera, event, now=now, policy=policy)) is not None:
            verdict = wrong_time
        elif event.event_id in first:
            index, owner = first[event.event_id]
            verdict = Repeat(index, same_camera=owner == camera.id)
        else:
            first[event.event_id] = (i, camera.id)
        verdicts.append(verdict)
    return verdicts


def resolve_repeats(verdicts: Sequence[Result | Repeat], items: Sequence[Item]) -> list[Result]:
    """Pure. Each repeat gets its first's answer as a replay (or a conflict from another
    camera); everything else is already final."""
    done: list[Result] = []
    for verdict, (_, event) in zip(verdicts, items, strict=True):
        if isinstance(verdict, Repeat):
            original = verdicts[verdict.first]
            assert isinstance(original, Ingested), "a repeat's first is a new, decided event"
            done.append(
                Ingested(original.ack, replay=True)
                if verdict.same_camera
                else _used(event.event_id)
            )
        else:
            done.append(verdict)
    return done


def _used(event_id: UUID) -> Conflict:
    return Conflict(f"event_id {event_id} was already used by another camera", field="event_id")


_STORED = {  # keyed by "is the backend PostgreSQL" (see ``bulk.among``)
    pg: select(PlateEventRow.event_id, PlateEventRow.camera_id, PlateEventRow.ack).where(
        among(PlateEventRow.event_id, "ids", postgresql=pg)
    )
    for pg in (False, True)
}


def _stored_acks(db: Session, ids: list[UUID]) -> dict[UUID, tuple[str, dict[str, Any]]]:
    statement = _STORED[db.connection().dialect.name == "postgresql"]
    return {row.event_id: (row.camera_id, row.ack) for row in db.execute(statement, {"ids": ids})}


def _apply(
    db: Session, items: list[Item], *, policy: IngestPolicy, now: datetime, look_first: bool
) -> list[Result]:
    """Add the events and their effects to the open transaction, in order; return each one's
    answer, or the domain error that concerns that event alone. Does not commit. With
    ``look_first`` false the stored answers are not read (new events are the rule) and a
    retry collides on the primary key in ``Ledger.ingest``."""
    stored = _stored_acks(db, [e.event_id for _, e in items]) if look_first else {}
    verdicts = triage(items, stored=stored, now=now, policy=policy)
    new = [item for item, verdict in zip(items, verdicts, strict=True) if verdict is None]
    ledger = Ledger(db, low_confidence=policy.low_confidence, tz=policy.timezone)
    acks = iter(ledger.ingest(new, now=now))
    decided = [Ingested(next(acks), replay=False) if v is None else v for v in verdicts]
    return resolve_repeats(decided, items)


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

    The only layer that retries. A transaction that loses a race to another one (a concurrent
    duplicate, or a concurrent entry of the same plate) is rolled back and replayed: one event
    looks its id up first and tries again (up to ``RACE_RETRIES`` times); several events are
    tried once more together, their stored answers looked up first, then one by one, so one
    event's trouble stays its own (and, not ``strict``, so does any other error that is not
    the database's). The first try reads no stored answers: new events are the rule, and a
    retried one collides on the primary key (one look-up per batch less).
    """
    now = now or utcnow()
    look_first = False
    for attempt in range(1 + RACE_RETRIES):
        try:
            results = _apply(db, items, policy=policy, now=now, look_first=look_first)
            if strict:
                _raise_first(db, results)
            db.commit()
            return results
        except DomainError:
            raise  # strict: the request's own error, already rolled back
        except Exception as error:
            db.rollback()
            if is_db_unavailable(error):
                raise
            raced = lost_a_race(error)
            if len(items) > 1 and raced and not look_first:
                look_first = True  # once more together, the stored answers read first
                continue
            if len(items) > 1 and (raced or not strict):
                if not raced:
                    log.warning("batch of %d failed (%s); one by one", len(items), error)
                return [_one(db, item, policy=policy, now=now, strict=strict) for item in items]
            if not raced or attempt == RACE_RETRIES:
                raise
            look_first = True
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

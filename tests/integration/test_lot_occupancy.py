"""The lot occupancy counter (``lot_occupancy``, kept by the database's triggers, migration 0006)
equals the number of open sessions of every lot after any sequence of changes to
``parking_sessions``, whoever makes them: single and multi-row inserts, updates and deletes,
status changes in every direction, a session moved to another lot, in one statement or many,
on SQLite and PostgreSQL. A missing or wrong trigger fails here."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.central.core.lots import Lot, LotOccupancy, ensure_lot, occupancy
from app.central.sessions.models import ParkingSession

LOTS = ("occ-a", "occ-b", "occ-c")
STATUSES = ("open", "closed", "void")
_plates = itertools.count()

# One step: (what, lot index, status, how many / which session)
step = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 2), st.sampled_from(STATUSES), st.integers(1, 4)),
    st.tuples(st.just("status"), st.integers(0, 2), st.sampled_from(STATUSES), st.integers(0, 9)),
    st.tuples(st.just("status_all"), st.integers(0, 2), st.sampled_from(STATUSES), st.just(0)),
    st.tuples(st.just("move"), st.integers(0, 2), st.just(""), st.integers(0, 9)),
    st.tuples(st.just("delete"), st.integers(0, 2), st.just(""), st.integers(0, 9)),
    st.tuples(st.just("delete_all"), st.integers(0, 2), st.sampled_from(STATUSES), st.just(0)),
)


@pytest.fixture
def lots(db: Session) -> Session:
    for lot_id in LOTS:
        ensure_lot(db, lot_id=lot_id, capacity=1000)
    db.commit()
    return db


def _counted(db: Session) -> dict[str, int]:
    return dict(
        db.execute(
            select(LotOccupancy.lot_id, LotOccupancy.open_sessions).where(
                LotOccupancy.lot_id.in_(LOTS)
            )
        ).all()
    )


def _truth(db: Session) -> dict[str, int]:
    found = dict(
        db.execute(
            select(ParkingSession.lot_id, func.count())
            .where(ParkingSession.status == "open", ParkingSession.lot_id.in_(LOTS))
            .group_by(ParkingSession.lot_id)
        ).all()
    )
    return {lot_id: found.get(lot_id, 0) for lot_id in LOTS}


def _session_ids(db: Session) -> list[int]:
    return list(
        db.scalars(
            select(ParkingSession.id)
            .where(ParkingSession.lot_id.in_(LOTS))
            .order_by(ParkingSession.id)
        )
    )


def _apply(db: Session, what: str, lot: str, status: str, n: int) -> None:
    ids = _session_ids(db)
    pick = ids[n % len(ids)] if ids else None
    if what == "insert":  # one statement, n rows (the ledger's multi-row insert)
        now = datetime.now(UTC)
        rows = []
        for _ in range(n):
            plate = f"OCC{next(_plates):05d}"
            rows.append(
                {
                    "lot_id": lot,
                    "plate_normalized": plate,
                    "plate_key": plate,
                    "plate_display": plate,
                    "vehicle_type": "car",
                    "status": status,
                    "entered_at": now,
                    "created_at": now,
                }
            )
        db.execute(insert(ParkingSession), rows)
    elif what == "status" and pick is not None:
        db.execute(update(ParkingSession).where(ParkingSession.id == pick).values(status=status))
    elif what == "status_all":
        db.execute(update(ParkingSession).where(ParkingSession.lot_id == lot).values(status=status))
    elif what == "move" and pick is not None:
        db.execute(update(ParkingSession).where(ParkingSession.id == pick).values(lot_id=lot))
    elif what == "delete" and pick is not None:
        db.execute(delete(ParkingSession).where(ParkingSession.id == pick))
    elif what == "delete_all":
        db.execute(
            delete(ParkingSession).where(
                ParkingSession.lot_id == lot, ParkingSession.status == status
            )
        )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(step, min_size=1, max_size=12))
def test_the_counter_is_the_count_after_any_changes(
    lots: Session, steps: list[tuple[str, int, str, int]]
) -> None:
    db = lots
    savepoint = db.begin_nested()
    try:
        for what, lot_index, status, n in steps:
            _apply(db, what, LOTS[lot_index], status, n)
            assert _counted(db) == _truth(db), f"after {what} {LOTS[lot_index]} {status} {n}"
    finally:
        savepoint.rollback()


def test_a_new_lot_has_its_counter_at_zero_and_the_readers_use_it(db: Session) -> None:
    ensure_lot(db, lot_id="occ-new", capacity=3)
    db.commit()
    assert db.get(LotOccupancy, "occ-new") is not None
    assert occupancy(db, lot_id="occ-new") == 0
    now = datetime.now(UTC)
    db.execute(
        insert(ParkingSession),
        [
            {
                "lot_id": "occ-new",
                "plate_normalized": plate,
                "plate_key": plate,
                "plate_display": plate,
                "vehicle_type": "car",
                "status": "open",
                "entered_at": now,
                "created_at": now,
            }
            for plate in ("OCCNEW1", "OCCNEW2")
        ],
    )
    assert occupancy(db, lot_id="occ-new") == 2
    assert occupancy(db, lot_id="no-such-lot") == 0


def test_a_deleted_lot_takes_its_counter_with_it(db: Session) -> None:
    ensure_lot(db, lot_id="occ-gone", capacity=3)
    db.commit()
    db.execute(delete(Lot).where(Lot.id == "occ-gone"))
    assert db.get(LotOccupancy, "occ-gone") is None

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.errors import InvalidInput, NotFound
from app.central.lots.models import Lot
from app.central.sessions.service import occupancy
from app.contract import ID_PATTERN

DEFAULT_CAPACITY = 100


def ensure_lot(
    db: Session, *, lot_id: str, name: str | None = None, capacity: int = DEFAULT_CAPACITY
) -> Lot:
    lot = db.get(Lot, lot_id)
    if lot is None:
        if not re.fullmatch(ID_PATTERN, lot_id):
            raise InvalidInput(
                "lot id must be 1-63 lower-case letters, digits, '_' or '-'", field="lot_id"
            )
        lot = Lot(id=lot_id, name=name or lot_id, capacity=capacity)
        db.add(lot)
        db.flush()
    return lot


def update_lot(
    db: Session,
    *,
    lot_id: str,
    name: str | None,
    capacity: int | None,
    exit_grace_minutes: int | None = None,
    lost_ticket_fee: int | None = None,
    max_stay_hours: int | None = None,
) -> Lot:
    lot = db.get(Lot, lot_id)
    if lot is None:
        raise NotFound(f"lot {lot_id!r} does not exist")
    if capacity is not None:
        if capacity < 0:
            raise InvalidInput("capacity must be >= 0", field="capacity")
        lot.capacity = capacity
    if name is not None:
        lot.name = name
    for attr, value in (
        ("exit_grace_minutes", exit_grace_minutes),
        ("lost_ticket_fee", lost_ticket_fee),
        ("max_stay_hours", max_stay_hours),
    ):
        if value is not None:
            if value < 0:
                raise InvalidInput(f"{attr} must be >= 0", field=attr)
            setattr(lot, attr, value)
    db.flush()
    return lot


def list_lots_with_occupancy(db: Session) -> list[tuple[Lot, int]]:
    return [(lot, occupancy(db, lot_id=lot.id)) for lot in db.scalars(select(Lot).order_by(Lot.id))]

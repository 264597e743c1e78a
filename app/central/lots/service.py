"""Lot administration: settings and the lot list with occupancy (the table and ``ensure_lot``
live in ``core.lots``)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.central.core.lots import Lot, LotOccupancy
from app.central.errors import InvalidInput, NotFound


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
    """Every lot with its open sessions (the counter row the database keeps), in one query."""
    rows = db.execute(
        select(Lot, func.coalesce(LotOccupancy.open_sessions, 0))
        .outerjoin(LotOccupancy, LotOccupancy.lot_id == Lot.id)
        .order_by(Lot.id)
    )
    return [(lot, int(used)) for lot, used in rows]

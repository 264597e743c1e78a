from __future__ import annotations

from fastapi import APIRouter, status

from app.central.audit import service as audit
from app.central.core.lots import Lot, ensure_lot, occupancy
from app.central.deps import DB, Admin, Guard, Manager
from app.central.errors import Conflict
from app.central.lots import service
from app.central.lots.schemas import LotCreate, LotOut, LotUpdate

router = APIRouter(prefix="/lots", tags=["lots"])


@router.get("", response_model=list[LotOut])
def list_lots(db: DB, _: Guard) -> list[LotOut]:
    return [_out(lot, used) for lot, used in service.list_lots_with_occupancy(db)]


@router.post("", response_model=LotOut, status_code=status.HTTP_201_CREATED)
def create_lot(body: LotCreate, db: DB, who: Admin) -> LotOut:
    if db.get(Lot, body.id) is not None:
        raise Conflict(f"lot {body.id!r} already exists", field="id")
    lot = ensure_lot(db, lot_id=body.id, name=body.name or body.id, capacity=body.capacity)
    service.update_lot(
        db, lot_id=lot.id, name=None, capacity=None, exit_grace_minutes=body.exit_grace_minutes,
        lost_ticket_fee=body.lost_ticket_fee, max_stay_hours=body.max_stay_hours,
    )  # fmt: skip
    audit.record_change(
        db,
        actor=who.username,
        action="lot.create",
        target_type="lot",
        target_id=lot.id,
        details=body.model_dump(exclude={"id"}),
    )
    return _out(lot, 0)


@router.patch("/{lot_id}", response_model=LotOut)
def update_lot(lot_id: str, body: LotUpdate, db: DB, who: Manager) -> LotOut:
    lot = service.update_lot(
        db, lot_id=lot_id, name=body.name, capacity=body.capacity,
        exit_grace_minutes=body.exit_grace_minutes, lost_ticket_fee=body.lost_ticket_fee,
        max_stay_hours=body.max_stay_hours,
    )  # fmt: skip
    audit.record_change(
        db,
        actor=who.username,
        action="lot.update",
        target_type="lot",
        target_id=lot.id,
        details=body.model_dump(exclude_none=True),
    )
    return _out(lot, occupancy(db, lot_id=lot.id))


def _out(lot: Lot, occupied: int) -> LotOut:
    return LotOut(
        id=lot.id,
        name=lot.name,
        capacity=lot.capacity,
        occupied=occupied,
        exit_grace_minutes=lot.exit_grace_minutes,
        lost_ticket_fee=lot.lost_ticket_fee,
        max_stay_hours=lot.max_stay_hours,
    )

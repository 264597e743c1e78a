"""Allow list, deny list and monthly subscriptions, looked up by the plate's match key
(``app.contract.plate_match_key``: look-alike characters such as O/0 are one). Who stands on
which list is decided once, by ``sessions.rules.Standing``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.core.lots import Lot
from app.central.errors import InvalidInput, NotFound
from app.central.lists.models import ListEntry, Subscription
from app.contract import normalize_plate, plate_match_key


def _require_lot(db: Session, lot_id: str) -> None:
    if db.get(Lot, lot_id) is None:
        raise InvalidInput(f"lot {lot_id!r} does not exist", field="lot_id")


def add_list_entry(
    db: Session,
    *,
    plate: str,
    kind: str,
    lot_id: str | None,
    reason: str,
    expires_at: datetime | None,
) -> ListEntry:
    if kind not in {"allow", "deny"}:
        raise InvalidInput("kind must be allow or deny", field="kind")
    if lot_id is not None:
        _require_lot(db, lot_id)
    entry = ListEntry(
        plate_normalized=normalize_plate(plate),
        plate_key=plate_match_key(plate),
        plate_display=plate,
        kind=kind,
        lot_id=lot_id,
        reason=reason,
        expires_at=expires_at,
    )
    db.add(entry)
    db.flush()
    return entry


def remove_list_entry(db: Session, *, entry_id: int) -> ListEntry:
    entry = db.get(ListEntry, entry_id)
    if entry is None:
        raise NotFound(f"list entry {entry_id} does not exist")
    db.delete(entry)
    db.flush()
    return entry


def list_entries(db: Session, *, kind: str | None = None) -> list[ListEntry]:
    query = select(ListEntry).order_by(ListEntry.id)
    if kind:
        query = query.where(ListEntry.kind == kind)
    return list(db.scalars(query))


def add_subscription(
    db: Session,
    *,
    plate: str,
    lot_id: str,
    holder: str,
    valid_from: datetime,
    valid_until: datetime,
) -> Subscription:
    if valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from", field="valid_until")
    _require_lot(db, lot_id)
    sub = Subscription(
        plate_normalized=normalize_plate(plate),
        plate_key=plate_match_key(plate),
        plate_display=plate,
        lot_id=lot_id,
        holder=holder,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    db.add(sub)
    db.flush()
    return sub


def list_subscriptions(db: Session, *, lot_id: str | None = None) -> list[Subscription]:
    query = select(Subscription).order_by(Subscription.id)
    if lot_id:
        query = query.where(Subscription.lot_id == lot_id)
    return list(db.scalars(query))

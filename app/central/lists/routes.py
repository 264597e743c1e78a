from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status

from app.central.audit import service as audit
from app.central.deps import DB, Guard, Manager, RowId
from app.central.lists import service
from app.central.lists.schemas import ListEntryIn, ListEntryOut, SubscriptionIn, SubscriptionOut

router = APIRouter(tags=["lists"])


@router.get("/lists", response_model=list[ListEntryOut])
def list_entries(
    db: DB, _: Guard, kind: Literal["allow", "deny"] | None = None
) -> list[ListEntryOut]:
    return [ListEntryOut.model_validate(e) for e in service.list_entries(db, kind=kind)]


@router.post("/lists", response_model=ListEntryOut, status_code=status.HTTP_201_CREATED)
def add_entry(body: ListEntryIn, db: DB, who: Manager) -> ListEntryOut:
    entry = service.add_list_entry(
        db,
        plate=body.plate,
        kind=body.kind,
        lot_id=body.lot_id,
        reason=body.reason,
        expires_at=body.expires_at,
    )
    audit.record_change(
        db,
        actor=who.username,
        action=f"list.add_{body.kind}",
        target_type="plate",
        target_id=entry.plate_normalized,
        reason=body.reason,
    )
    return ListEntryOut.model_validate(entry)


@router.delete("/lists/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_entry(entry_id: RowId, db: DB, who: Manager) -> Response:
    entry = service.remove_list_entry(db, entry_id=entry_id)
    audit.record_change(
        db,
        actor=who.username,
        action=f"list.remove_{entry.kind}",
        target_type="plate",
        target_id=entry.plate_normalized,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/subscriptions", response_model=list[SubscriptionOut])
def list_subscriptions(db: DB, _: Guard, lot_id: str | None = None) -> list[SubscriptionOut]:
    return [
        SubscriptionOut.model_validate(s) for s in service.list_subscriptions(db, lot_id=lot_id)
    ]


@router.post("/subscriptions", response_model=SubscriptionOut, status_code=status.HTTP_201_CREATED)
def add_subscription(body: SubscriptionIn, db: DB, who: Manager) -> SubscriptionOut:
    sub = service.add_subscription(
        db,
        plate=body.plate,
        lot_id=body.lot_id,
        holder=body.holder,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
    )
    audit.record_change(
        db,
        actor=who.username,
        action="subscription.add",
        target_type="plate",
        target_id=sub.plate_normalized,
        details={"lot_id": body.lot_id, "valid_until": body.valid_until.isoformat()},
    )
    return SubscriptionOut.model_validate(sub)

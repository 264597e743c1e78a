from __future__ import annotations

from fastapi import APIRouter

from app.central.audit import service as audit
from app.central.deps import DB, Guard, Manager
from app.central.tariffs import service
from app.central.tariffs.schemas import TariffIn, TariffOut

router = APIRouter(prefix="/tariffs", tags=["tariffs"])


@router.get("", response_model=list[TariffOut])
def list_tariffs(db: DB, _: Guard, lot_id: str | None = None) -> list[TariffOut]:
    return [TariffOut.model_validate(t) for t in service.list_tariffs(db, lot_id=lot_id)]


@router.put("", response_model=TariffOut)
def put_tariff(body: TariffIn, db: DB, who: Manager) -> TariffOut:
    tariff = service.put_tariff(
        db,
        lot_id=body.lot_id,
        vehicle_type=body.vehicle_type.value,
        free_minutes=body.free_minutes,
        hourly_rate=body.hourly_rate,
        daily_cap=body.daily_cap,
        overnight_fee=body.overnight_fee,
    )
    audit.record_change(
        db,
        actor=who.username,
        action="tariff.put",
        target_type="tariff",
        target_id=f"{body.lot_id}/{body.vehicle_type.value}",
        details=body.model_dump(mode="json"),
    )
    return TariffOut.model_validate(tariff)

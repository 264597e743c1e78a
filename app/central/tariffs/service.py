"""Fees: free minutes, hourly rate per started hour, daily cap per 24 h, overnight fee."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.errors import InvalidInput, NotFound
from app.central.tariffs.models import Tariff

DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class Fee:
    total: int
    minutes: int
    parking: int
    overnight: int
    nights: int
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_fee(
    tariff: Tariff | None, *, entered_at: datetime, exited_at: datetime, tz: str
) -> Fee:
    """The fee for one stay.

    * A stay no longer than ``free_minutes`` is free (a grace period; longer stays pay from
      the first minute).
    * Otherwise every started hour costs ``hourly_rate``; within each 24 h block counted from
      entry the charge is capped at ``daily_cap`` (0 = no cap).
    * ``overnight_fee`` is added once for every local midnight the vehicle was parked across.
    """
    minutes = max(0, math.ceil((exited_at - entered_at).total_seconds() / 60))
    if tariff is None:
        return Fee(0, minutes, 0, 0, 0, "no_tariff")
    if minutes <= tariff.free_minutes:
        return Fee(0, minutes, 0, 0, 0, "free_minutes")
    full_days, rest = divmod(minutes, DAY_MINUTES)
    day_charge = 24 * tariff.hourly_rate
    rest_charge = math.ceil(rest / 60) * tariff.hourly_rate
    if tariff.daily_cap:
        day_charge = min(day_charge, tariff.daily_cap)
        rest_charge = min(rest_charge, tariff.daily_cap)
    parking = full_days * day_charge + rest_charge
    nights = midnights_crossed(entered_at, exited_at, ZoneInfo(tz))
    overnight = nights * tariff.overnight_fee
    return Fee(parking + overnight, minutes, parking, overnight, nights, "tariff")


def midnights_crossed(start: datetime, end: datetime, zone: ZoneInfo) -> int:
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    if local_end <= local_start:
        return 0
    first_midnight = datetime.combine(
        local_start.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone
    )
    if local_end < first_midnight:
        return 0
    return (local_end.date() - first_midnight.date()).days + 1


def tariff_for(db: Session, *, lot_id: str, vehicle_type: str) -> Tariff | None:
    """The lot's tariff for this vehicle type, falling back to its ``unknown`` (default) tariff."""
    rows = db.scalars(
        select(Tariff).where(
            Tariff.lot_id == lot_id, Tariff.vehicle_type.in_([vehicle_type, "unknown"])
        )
    ).all()
    by_type = {row.vehicle_type: row for row in rows}
    return by_type.get(vehicle_type) or by_type.get("unknown")


def list_tariffs(db: Session, *, lot_id: str | None = None) -> list[Tariff]:
    query = select(Tariff).order_by(Tariff.lot_id, Tariff.vehicle_type)
    if lot_id:
        query = query.where(Tariff.lot_id == lot_id)
    return list(db.scalars(query))


def put_tariff(
    db: Session,
    *,
    lot_id: str,
    vehicle_type: str,
    free_minutes: int,
    hourly_rate: int,
    daily_cap: int,
    overnight_fee: int,
) -> Tariff:
    from app.central.core.lots import Lot

    if db.get(Lot, lot_id) is None:
        raise NotFound(f"lot {lot_id!r} does not exist", field="lot_id")
    if daily_cap and daily_cap < hourly_rate:
        raise InvalidInput(
            "daily_cap must be 0 (no cap) or at least hourly_rate", field="daily_cap"
        )
    tariff = db.scalar(
        select(Tariff).where(Tariff.lot_id == lot_id, Tariff.vehicle_type == vehicle_type)
    )
    if tariff is None:
        tariff = Tariff(lot_id=lot_id, vehicle_type=vehicle_type)
        db.add(tariff)
    tariff.free_minutes = free_minutes
    tariff.hourly_rate = hourly_rate
    tariff.daily_cap = daily_cap
    tariff.overnight_fee = overnight_fee
    db.flush()
    return tariff

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from app.central.deps import DB, Admin, State
from app.central.privacy import erasure
from app.central.privacy.schemas import PlateErasureIn, PlateErasureOut

router = APIRouter(tags=["privacy"])


@router.post("/plates/erase", response_model=PlateErasureOut)
def erase_plate(body: PlateErasureIn, db: DB, who: Admin, state: State) -> PlateErasureOut:
    """Erase a plate's history, look-alike spellings included (``plate_match_key``): sessions
    keep times and amounts with the plate replaced by ERASED, events lose the plate and their
    snapshots, list entries and passes go. 409 while the plate has an open session."""
    done = erasure.erase_plate(
        db, plate=body.plate, actor=who.username, reason=body.reason, secret=state.jwt_key
    )
    db.commit()
    return PlateErasureOut(**asdict(done))

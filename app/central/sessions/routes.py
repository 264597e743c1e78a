from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.central.deps import DB, Guard, Manager, State
from app.central.sessions import service
from app.central.sessions.schemas import (
    AnomalyOut,
    AnomalyResolution,
    PlateCorrection,
    SessionOut,
)

router = APIRouter(prefix="/api/v1", tags=["sessions"])


@router.get("/sessions", response_model=list[SessionOut])
def list_sessions(
    db: DB,
    _: Guard,
    plate: Annotated[str | None, Query(max_length=20)] = None,
    fuzzy: bool = False,
    status: Literal["open", "closed"] | None = None,
    lot_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[SessionOut]:
    rows = service.list_sessions(
        db, plate=plate, fuzzy=fuzzy, status=status, lot_id=lot_id, limit=limit, offset=offset
    )
    return [SessionOut.model_validate(row) for row in rows]


@router.get("/sessions/{session_id}", response_model=SessionOut)
def get_session(session_id: int, db: DB, _: Guard) -> SessionOut:
    return SessionOut.model_validate(service.get_session(db, session_id=session_id))


@router.patch("/sessions/{session_id}", response_model=SessionOut)
def correct_plate(
    session_id: int, body: PlateCorrection, db: DB, who: Manager, state: State
) -> SessionOut:
    session = service.correct_plate(
        db,
        session_id=session_id,
        plate=body.plate,
        actor=who.username,
        reason=body.reason,
        tz=state.settings.timezone,
    )
    db.commit()
    return SessionOut.model_validate(session)


@router.get("/anomalies", response_model=list[AnomalyOut])
def list_anomalies(
    db: DB,
    _: Guard,
    kind: str | None = None,
    resolved: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AnomalyOut]:
    return [
        AnomalyOut.model_validate(a)
        for a in service.list_anomalies(db, kind=kind, resolved=resolved, limit=limit)
    ]


@router.post("/anomalies/{anomaly_id}/resolve", response_model=AnomalyOut)
def resolve_anomaly(anomaly_id: int, body: AnomalyResolution, db: DB, who: Guard) -> AnomalyOut:
    anomaly = service.resolve_anomaly(db, anomaly_id=anomaly_id, actor=who.username, note=body.note)
    db.commit()
    return AnomalyOut.model_validate(anomaly)

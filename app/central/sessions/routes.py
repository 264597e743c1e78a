from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from app.central.clock import utcnow
from app.central.commands import service as commands
from app.central.deps import DB, Guard, Manager, Offset, RowId, State
from app.central.sessions import service
from app.central.sessions.schemas import (
    AnomalyOut,
    AnomalyResolution,
    ManualClose,
    ManualEntry,
    PlateCorrection,
    SessionDue,
    SessionOut,
    VoidSession,
)

router = APIRouter(tags=["sessions"])


@router.get("/sessions", response_model=list[SessionOut])
def list_sessions(
    db: DB,
    _: Guard,
    plate: Annotated[str | None, Query(max_length=20)] = None,
    fuzzy: bool = False,
    status: Literal["open", "closed", "void"] | None = None,
    lot_id: Annotated[str | None, Query(max_length=64)] = None,
    held: Annotated[bool, Query(description="only vehicles waiting at an exit to pay")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[SessionOut]:
    rows = service.list_sessions(
        db, plate=plate, fuzzy=fuzzy, status=status, lot_id=lot_id, held=held, limit=limit,
        offset=offset,
    )  # fmt: skip
    return [SessionOut.model_validate(row) for row in rows]


@router.get("/sessions/{session_id}", response_model=SessionOut)
def get_session(session_id: RowId, db: DB, _: Guard) -> SessionOut:
    return SessionOut.model_validate(service.get_session(db, session_id=session_id))


@router.patch("/sessions/{session_id}", response_model=SessionOut)
def correct_plate(
    session_id: RowId, body: PlateCorrection, db: DB, who: Manager, state: State
) -> SessionOut:
    session = service.correct_plate(
        db,
        session_id=session_id,
        plate=body.plate,
        actor=who.username,
        reason=body.reason,
        tz=state.settings.timezone,
        command_ttl_s=state.settings.command_ttl_s,
    )
    db.commit()
    return SessionOut.model_validate(session)


@router.post("/sessions", response_model=SessionOut, status_code=status.HTTP_201_CREATED)
def open_manual(body: ManualEntry, db: DB, who: Guard, state: State) -> SessionOut:
    """A vehicle the entry camera did not read: the guard types its plate; the lane's latest
    picture is attached. With ``open_gate`` the lane's barrier is opened too."""
    now = utcnow()
    session = service.open_manual(
        db,
        camera_id=body.camera_id,
        plate=body.plate,
        vehicle_type=body.vehicle_type.value,
        actor=who.username,
        reason=body.reason,
        now=now,
    )
    if body.open_gate:
        commands.issue(
            db,
            camera_id=body.camera_id,
            operator=who.username,
            reason=f"manual entry: {body.reason}",
            now=now,
            ttl_s=state.settings.command_ttl_s,
            session_id=session.id,
            action="gate.open_manual_entry",
        )
    db.commit()
    return SessionOut.model_validate(session)


@router.post("/sessions/{session_id}/close", response_model=SessionOut)
def close_manual(
    session_id: RowId, body: ManualClose, db: DB, who: Guard, state: State
) -> SessionOut:
    """Close a session by hand (left unseen, lost ticket); what is unpaid stays due."""
    session = service.close_manual(
        db,
        session_id=session_id,
        actor=who.username,
        reason=body.reason,
        lost_ticket=body.lost_ticket,
        now=utcnow(),
        tz=state.settings.timezone,
    )
    db.commit()
    return SessionOut.model_validate(session)


@router.post("/sessions/{session_id}/void", response_model=SessionOut)
def void_session(session_id: RowId, body: VoidSession, db: DB, who: Manager) -> SessionOut:
    """A phantom or duplicate session: voided (no fee, no room taken), kept for the record."""
    session = service.void_session(
        db, session_id=session_id, actor=who.username, reason=body.reason
    )
    db.commit()
    return SessionOut.model_validate(session)


@router.get("/sessions/{session_id}/due", response_model=SessionDue)
def amount_due(session_id: RowId, db: DB, _: Guard, state: State) -> SessionDue:
    """What the session owes now (a held exit: its fee at the lane)."""
    session = service.get_session(db, session_id=session_id)
    due = service.amount_due(db, session=session, now=utcnow(), tz=state.settings.timezone)
    held = session.exit_held_camera_id if session.exit_held_at is not None and due > 0 else None
    return SessionDue(session_id=session.id, status=session.status, due=due, held_at_lane=held)


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
def resolve_anomaly(anomaly_id: RowId, body: AnomalyResolution, db: DB, who: Guard) -> AnomalyOut:
    anomaly = service.resolve_anomaly(db, anomaly_id=anomaly_id, actor=who.username, note=body.note)
    db.commit()
    return AnomalyOut.model_validate(anomaly)

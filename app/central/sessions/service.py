"""Parking sessions: queries, corrections, anomalies. Entry and exit decisions (the ingest hot
path) live in ``ledger.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from app.central.audit import service as audit
from app.central.errors import Conflict, InvalidInput, NotFound
from app.central.lists import service as lists
from app.central.live.service import announce
from app.central.lots.models import Lot
from app.central.sessions.matching import within_one_edit
from app.central.sessions.models import Anomaly, ParkingSession
from app.central.tariffs.service import Fee, compute_fee, tariff_for
from app.contract import normalize_plate


def session_view(session: ParkingSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "lot_id": session.lot_id,
        "plate": session.plate_display,
        "status": session.status,
        "vehicle_type": session.vehicle_type,
        "entered_at": session.entered_at.isoformat(),
        "exited_at": session.exited_at.isoformat() if session.exited_at else None,
        "fee": session.fee,
    }


def occupancy(db: Session, *, lot_id: str) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(ParkingSession)
            .where(ParkingSession.lot_id == lot_id, ParkingSession.status == "open")
        )
        or 0
    )


_ROOM = select(func.count()).select_from(
    select(ParkingSession.id)
    .where(ParkingSession.lot_id == bindparam("lot"), ParkingSession.status == "open")
    .limit(bindparam("capacity"))
    .subquery()
)


def has_room(db: Session, *, lot: Lot) -> bool:
    """Whether one more vehicle fits; counts at most ``capacity`` rows, whatever the lot's size."""
    counted = db.scalar(_ROOM, {"lot": lot.id, "capacity": lot.capacity}) or 0
    return counted < lot.capacity


def _fee_for(
    db: Session, *, session: ParkingSession, plate_n: str, exited_at: datetime, tz: str
) -> Fee:
    if (
        lists.list_status(db, plate_normalized=plate_n, lot_id=session.lot_id, at=exited_at)
        == "allow"
    ):
        return Fee(0, 0, 0, 0, 0, "allow_listed")
    if (
        lists.active_subscription(
            db, plate_normalized=plate_n, lot_id=session.lot_id, at=session.entered_at
        )
        is not None
    ):
        return Fee(0, 0, 0, 0, 0, "subscriber")
    tariff = tariff_for(db, lot_id=session.lot_id, vehicle_type=session.vehicle_type)
    return compute_fee(tariff, entered_at=session.entered_at, exited_at=exited_at, tz=tz)


def correct_plate(
    db: Session, *, session_id: int, plate: str, actor: str, reason: str, tz: str
) -> ParkingSession:
    """A manager fixes a misread plate; the fee is re-evaluated and the change audited."""
    session = db.get(ParkingSession, session_id)
    if session is None:
        raise NotFound(f"session {session_id} does not exist")
    new_n = normalize_plate(plate)
    if not 2 <= len(new_n) <= 12:
        raise InvalidInput("plate must hold 2-12 letters and digits", field="plate")
    if session.status == "open":
        clash = db.scalar(
            select(ParkingSession.id).where(
                ParkingSession.lot_id == session.lot_id,
                ParkingSession.plate_normalized == new_n,
                ParkingSession.status == "open",
                ParkingSession.id != session.id,
            )
        )
        if clash is not None:
            raise Conflict(f"session {clash} is already open for {plate}", field="plate")
    before = {"plate": session.plate_display, "fee": session.fee}
    session.plate_display = plate
    session.plate_normalized = new_n
    if session.status == "closed" and session.exited_at is not None:
        fee = _fee_for(db, session=session, plate_n=new_n, exited_at=session.exited_at, tz=tz)
        session.fee = fee.total
        session.fee_basis = {**(session.fee_basis or {}), "exit": fee.as_dict()}
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="session.correct_plate",
        target_type="session",
        target_id=str(session.id),
        reason=reason,
        details={"before": before, "after": {"plate": session.plate_display, "fee": session.fee}},
    )
    announce(db, kind="session_updated", data=session_view(session))
    return session


def list_sessions(
    db: Session,
    *,
    plate: str | None = None,
    fuzzy: bool = False,
    status: str | None = None,
    lot_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ParkingSession]:
    query = select(ParkingSession).order_by(ParkingSession.id.desc())
    if status:
        query = query.where(ParkingSession.status == status)
    if lot_id:
        query = query.where(ParkingSession.lot_id == lot_id)
    if plate:
        plate_n = normalize_plate(plate)
        if not fuzzy:
            query = query.where(ParkingSession.plate_normalized == plate_n)
        else:
            query = query.where(
                func.length(ParkingSession.plate_normalized).between(
                    len(plate_n) - 1, len(plate_n) + 1
                )
            )
            rows = [s for s in db.scalars(query) if within_one_edit(s.plate_normalized, plate_n)]
            return rows[offset : offset + limit]
    return list(db.scalars(query.limit(limit).offset(offset)))


def get_session(db: Session, *, session_id: int) -> ParkingSession:
    session = db.get(ParkingSession, session_id)
    if session is None:
        raise NotFound(f"session {session_id} does not exist")
    return session


def resolve_anomaly(db: Session, *, anomaly_id: int, actor: str, note: str) -> Anomaly:
    """A guard has dealt with it: marked resolved, with the note in the audit log."""
    anomaly = db.get(Anomaly, anomaly_id)
    if anomaly is None:
        raise NotFound(f"anomaly {anomaly_id} does not exist")
    if anomaly.resolved:
        raise Conflict(f"anomaly {anomaly_id} is already resolved")
    anomaly.resolved = True
    audit.record(
        db,
        actor=actor,
        action="anomaly.resolve",
        target_type="anomaly",
        target_id=str(anomaly_id),
        reason=note,
        details={"kind": anomaly.kind},
    )
    announce(db, kind="anomaly_resolved", data={"id": anomaly_id, "by": actor})
    db.flush()
    return anomaly


def list_anomalies(
    db: Session, *, kind: str | None = None, resolved: bool | None = None, limit: int = 100
) -> list[Anomaly]:
    query = select(Anomaly).order_by(Anomaly.id.desc()).limit(limit)
    if kind:
        query = query.where(Anomaly.kind == kind)
    if resolved is not None:
        query = query.where(Anomaly.resolved == resolved)
    return list(db.scalars(query))

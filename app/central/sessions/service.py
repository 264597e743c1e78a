"""Parking sessions: queries, corrections, anomalies. Entry and exit decisions (the ingest hot
path) live in ``ledger.py``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.central.audit import service as audit
from app.central.cameras.models import Camera
from app.central.clock import utcnow
from app.central.commands import service as commands
from app.central.core.events import PlateEvent
from app.central.core.lots import Lot
from app.central.errors import Conflict, InvalidInput, NotFound
from app.central.live.service import announce
from app.central.sessions import rules
from app.central.sessions.ledger import Ledger, SessionRef
from app.central.sessions.matching import within_one_edit
from app.central.sessions.models import Anomaly, ParkingSession
from app.central.sessions.rules import LotRules
from app.central.tariffs.service import Fee
from app.contract import normalize_plate, plate_match_key

LATEST_SNAPSHOT_AGE = timedelta(minutes=10)


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
        "paid_amount": session.paid_amount,
        "exit_held_at": session.exit_held_at.isoformat() if session.exit_held_at else None,
        "exit_held_camera_id": session.exit_held_camera_id,
    }


def _ref(session: ParkingSession) -> SessionRef:
    return SessionRef(
        id=session.id,
        lot_id=session.lot_id,
        plate_normalized=session.plate_normalized,
        plate_display=session.plate_display,
        vehicle_type=session.vehicle_type,
        entered_at=session.entered_at,
        paid_amount=session.paid_amount or 0,
        paid_at=session.paid_at,
    )


def stay_fee(db: Session, *, session: ParkingSession, exited_at: datetime, tz: str) -> Fee:
    """The stay's fee by the same rule the gate uses (``rules.exit_fee`` via the ledger)."""
    ledger = Ledger(db, low_confidence=0.0, tz=tz)
    return ledger.fee(_ref(session), plate_n=session.plate_normalized, exited_at=exited_at)


def lot_rules(db: Session, *, lot_id: str) -> LotRules:
    return Ledger(db, low_confidence=0.0, tz="UTC").lot(lot_id)


def amount_due(db: Session, *, session: ParkingSession, now: datetime, tz: str) -> int:
    """What the session owes now: a held exit its fee at the lane, an open stay its fee so far
    (nothing within the grace period after paying), a closed one what is left unpaid."""
    paid = session.paid_amount or 0
    if session.status == "void":
        return 0
    if session.status == "closed":
        return max(0, (session.fee or 0) - paid)
    lot = lot_rules(db, lot_id=session.lot_id)
    if session.exit_held_at is not None:
        return rules.amount_due(
            session.fee or 0, paid_amount=paid, paid_at=session.paid_at,
            at=session.exit_held_at, lot=lot,
        )  # fmt: skip
    fee = stay_fee(db, session=session, exited_at=max(now, session.entered_at), tz=tz)
    return rules.amount_due(fee.total, paid_amount=paid, paid_at=session.paid_at, at=now, lot=lot)


def correct_plate(
    db: Session,
    *,
    session_id: int,
    plate: str,
    actor: str,
    reason: str,
    tz: str,
    now: datetime | None = None,
    command_ttl_s: float = 10.0,
) -> ParkingSession:
    """A manager fixes a misread plate; the fee is re-evaluated and the change audited. A held
    exit that owes nothing under the right plate (a subscriber, an allow-listed vehicle) is
    closed and its lane opened."""
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
                ParkingSession.plate_key == plate_match_key(new_n),
                ParkingSession.status == "open",
                ParkingSession.id != session.id,
            )
        )
        if clash is not None:
            raise Conflict(f"session {clash} is already open for {plate}", field="plate")
    before = {"plate": session.plate_display, "fee": session.fee}
    session.plate_display = plate
    session.plate_normalized = new_n
    session.plate_key = plate_match_key(new_n)
    held_lane = session.exit_held_camera_id if session.status == "open" else None
    exited_at = session.exited_at if session.status == "closed" else session.exit_held_at
    if session.status != "void" and exited_at is not None:
        fee = stay_fee(db, session=session, exited_at=exited_at, tz=tz)
        session.fee = fee.total
        session.fee_basis = {**(session.fee_basis or {}), "exit": fee.as_dict()}
    at = now or utcnow()
    released = held_lane is not None and amount_due(db, session=session, now=at, tz=tz) == 0
    if released:
        session.status = "closed"
        session.exited_at = session.exit_held_at
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="session.correct_plate",
        target_type="session",
        target_id=str(session.id),
        reason=reason,
        details={"before": before, "after": {"plate": session.plate_display, "fee": session.fee},
                 "released_lane": held_lane if released else None},
    )  # fmt: skip
    if released and held_lane is not None:
        commands.issue(
            db, camera_id=held_lane, operator=actor, reason=f"plate corrected: {reason}",
            now=at, ttl_s=command_ttl_s, session_id=session.id,
            action="gate.open_corrected",
        )  # fmt: skip
    announce(db, kind="session_updated", data=session_view(session))
    return session


def list_sessions(
    db: Session,
    *,
    plate: str | None = None,
    fuzzy: bool = False,
    status: str | None = None,
    lot_id: str | None = None,
    held: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[ParkingSession]:
    query = select(ParkingSession).order_by(ParkingSession.id.desc())
    if held:
        query = query.where(
            ParkingSession.status == "open", ParkingSession.exit_held_at.is_not(None)
        )
    if status:
        query = query.where(ParkingSession.status == status)
    if lot_id:
        query = query.where(ParkingSession.lot_id == lot_id)
    if plate:
        # Match keys: a look-alike character (O/0, I/1, ...) is the same plate, not an edit.
        key = plate_match_key(plate)
        if not fuzzy:
            query = query.where(ParkingSession.plate_key == key)
        else:
            query = query.where(
                func.length(ParkingSession.plate_key).between(len(key) - 1, len(key) + 1)
            )
            rows = [s for s in db.scalars(query) if within_one_edit(s.plate_key, key)]
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


# -- exceptions an operator resolves -------------------------------------------------------------


def _latest_snapshot_event(db: Session, *, camera_id: str, now: datetime) -> UUID | None:
    """The lane's most recent picture (within ten minutes), to attach to a typed-in entry."""
    return db.scalar(
        select(PlateEvent.event_id)
        .where(
            PlateEvent.camera_id == camera_id,
            PlateEvent.has_snapshot.is_(True),
            PlateEvent.received_at >= now - LATEST_SNAPSHOT_AGE,
        )
        .order_by(PlateEvent.received_at.desc())
        .limit(1)
    )


def open_manual(
    db: Session,
    *,
    camera_id: str,
    plate: str,
    vehicle_type: str,
    actor: str,
    reason: str,
    now: datetime,
) -> ParkingSession:
    """A vehicle the entry camera did not read: a guard types the plate in at the lane. The
    lane's latest picture is attached; the entry is audited and visible in the history."""
    camera = db.get(Camera, camera_id)
    if camera is None:
        raise NotFound(f"camera {camera_id!r} does not exist")
    if camera.direction != "entry":
        raise InvalidInput(
            f"{camera_id} is an exit lane; enter at an entry lane", field="camera_id"
        )
    plate_n = normalize_plate(plate)
    if not 2 <= len(plate_n) <= 12:
        raise InvalidInput("plate must hold 2-12 letters and digits", field="plate")
    clash = db.scalar(
        select(ParkingSession.id).where(
            ParkingSession.lot_id == camera.lot_id,
            ParkingSession.plate_key == plate_match_key(plate_n),
            ParkingSession.status == "open",
        )
    )
    if clash is not None:
        raise Conflict(f"session {clash} is already open for {plate}", field="plate")
    session = ParkingSession(
        lot_id=camera.lot_id,
        plate_normalized=plate_n,
        plate_key=plate_match_key(plate_n),
        plate_display=plate.strip().upper(),
        vehicle_type=vehicle_type,
        status="open",
        entered_at=now,
        fee_basis={"entry": "manual"},
        manual_by=actor,
        manual_reason=reason,
        snapshot_event_id=_latest_snapshot_event(db, camera_id=camera.id, now=now),
        paid_amount=0,
        created_at=now,
    )
    db.add(session)
    db.flush()
    audit.record(
        db, actor=actor, action="session.open_manual", target_type="session",
        target_id=str(session.id), reason=reason,
        details={"camera_id": camera.id, "plate": session.plate_display,
                 "snapshot_event_id": str(session.snapshot_event_id or "")},
    )  # fmt: skip
    announce(db, kind="session_opened", data=session_view(session))
    return session


def close_manual(
    db: Session,
    *,
    session_id: int,
    actor: str,
    reason: str,
    lost_ticket: bool,
    now: datetime,
    tz: str,
) -> ParkingSession:
    """A guard closes a session by hand (the vehicle left unseen, or lost its ticket). The fee
    is the stay's by the usual rule; a lost ticket pays at least the lot's lost-ticket fee.
    What is unpaid stays due: a cashier takes it as a payment."""
    session = get_session(db, session_id=session_id)
    if session.status != "open":
        raise Conflict(f"session {session_id} is {session.status}, not open")
    exited_at = session.exit_held_at or max(now, session.entered_at)
    fee = stay_fee(db, session=session, exited_at=exited_at, tz=tz)
    lot = lot_rules(db, lot_id=session.lot_id)
    total = rules.lost_ticket_fee(fee, lot) if lost_ticket else fee.total
    if rules.paid_in_grace(
        paid_amount=session.paid_amount or 0, paid_at=session.paid_at, at=exited_at, lot=lot
    ):
        total = min(total, session.paid_amount or 0) if not lost_ticket else total
    before = {"status": session.status, "fee": session.fee}
    session.status = "closed"
    session.exited_at = exited_at
    session.fee = total
    session.fee_basis = {
        **(session.fee_basis or {}),
        "exit": {**fee.as_dict(), "manual": True, "lost_ticket": lost_ticket, "total": total},
    }
    session.manual_by = actor
    session.manual_reason = reason
    db.flush()
    audit.record(
        db, actor=actor, action="session.close_manual", target_type="session",
        target_id=str(session.id), reason=reason,
        details={"before": before, "fee": total, "lost_ticket": lost_ticket},
    )  # fmt: skip
    announce(db, kind="session_closed", data=session_view(session))
    return session


def void_session(db: Session, *, session_id: int, actor: str, reason: str) -> ParkingSession:
    """A phantom or duplicate session is voided: no fee, no room taken, kept for the record."""
    session = get_session(db, session_id=session_id)
    if session.status == "void":
        raise Conflict(f"session {session_id} is already void")
    if (session.paid_amount or 0) > 0:
        raise Conflict(f"session {session_id} has payments; it cannot be voided")
    before = {"status": session.status, "fee": session.fee}
    session.status = "void"
    session.fee = 0
    session.exit_held_at = None
    session.manual_by = actor
    session.manual_reason = reason
    db.flush()
    audit.record(
        db, actor=actor, action="session.void", target_type="session",
        target_id=str(session.id), reason=reason, details={"before": before},
    )  # fmt: skip
    announce(db, kind="session_updated", data=session_view(session))
    return session


def flag_overstays(db: Session, *, now: datetime) -> int:
    """Open sessions past their lot's longest stay become ``overstay`` anomalies, once each."""
    flagged = 0
    for lot in db.scalars(select(Lot).where(Lot.max_stay_hours > 0)):
        cutoff = now - timedelta(hours=lot.max_stay_hours)
        already = select(Anomaly.session_id).where(
            Anomaly.kind == "overstay", Anomaly.session_id.is_not(None)
        )
        rows = db.scalars(
            select(ParkingSession)
            .where(
                ParkingSession.lot_id == lot.id,
                ParkingSession.status == "open",
                ParkingSession.entered_at < cutoff,
                ParkingSession.id.not_in(already),
            )
            .limit(500)
        ).all()
        for session in rows:
            limits = LotRules(lot.capacity, max_stay_hours=lot.max_stay_hours)
            if not rules.overstayed(entered_at=session.entered_at, now=now, lot=limits):
                continue
            detail = f"open since {session.entered_at.isoformat()} (limit {lot.max_stay_hours} h)"
            db.add(
                Anomaly(
                    kind="overstay", lot_id=lot.id, session_id=session.id,
                    plate=session.plate_display, detail=detail, created_at=now, resolved=False,
                )
            )  # fmt: skip
            announce(
                db,
                kind="anomaly",
                data={"kind": "overstay", "lot_id": lot.id, "plate": session.plate_display,
                      "detail": detail, "session_id": session.id},
            )  # fmt: skip
            flagged += 1
    db.flush()
    return flagged

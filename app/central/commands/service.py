"""Lane commands: an operator's (or a payment's) order to one lane, carried to its agent.

The database row is the truth; every step is audited and announced on the live feed:

* ``issue``: a lane whose agent holds no command poll fails at once (nothing is queued for
  later: a barrier must not open when nobody is watching it), otherwise ``pending``.
* ``offer``: the lane's long poll takes its pending commands (``delivered``, first time
  noted); a command is offered again on every poll until acknowledged or expired, and the edge
  executes each id at most once (its own on-disk journal).
* ``acknowledge``: the agent says pulsed / expired / failed, after the relay moved.
* ``expire``: a command not acknowledged ``ACK_SLACK`` after its expiry is ``expired``. The
  edge never acts after the expiry (it counts ``ttl_ms`` on its own monotonic clock), so an
  ack that still comes later can only say it pulsed in time, and is believed.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.audit import service as audit
from app.central.cameras.models import Camera
from app.central.clock import as_utc
from app.central.commands.models import LaneCommand
from app.central.errors import Forbidden, InvalidInput, NotFound
from app.central.live.service import announce
from app.contract import MAX_COMMAND_TTL_S, CommandAck, LaneCommandKind
from app.contract import LaneCommand as WireCommand

# How long after a poll's own end a lane still counts as listening (its agent reconnecting).
RECONNECT_ALLOWANCE = timedelta(seconds=3)
# Sent ``ttl_ms`` is short of the real time left by this much: the answer's transit to the
# edge, which then starts counting, must not make the barrier move after ``expires_at``.
TRANSIT_MARGIN = timedelta(milliseconds=250)
# An unacknowledged command is declared expired this long after its expiry.
ACK_SLACK = timedelta(seconds=5)

OPEN_STATES = ("pending", "delivered")
FINAL_STATES = ("pulsed", "failed", "expired")


def command_view(command: LaneCommand) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return as_utc(value).isoformat() if value else None

    return {
        "id": str(command.id),
        "camera_id": command.camera_id,
        "lot_id": command.lot_id,
        "kind": command.kind,
        "operator": command.operator,
        "reason": command.reason,
        "status": command.status,
        "issued_at": iso(command.issued_at),
        "expires_at": iso(command.expires_at),
        "delivered_at": iso(command.delivered_at),
        "acked_at": iso(command.acked_at),
        "edge_at": iso(command.edge_at),
        "deliveries": command.deliveries,
        "detail": command.detail,
        "session_id": command.session_id,
        "payment_id": command.payment_id,
    }


def _changed(db: Session, command: LaneCommand) -> None:
    announce(db, kind="lane_command", data=command_view(command))


def lane_listening(camera: Camera, *, now: datetime) -> bool:
    until = camera.commands_poll_until
    return until is not None and now <= as_utc(until) + RECONNECT_ALLOWANCE


def issue(
    db: Session,
    *,
    camera_id: str,
    operator: str,
    reason: str,
    now: datetime,
    ttl_s: float,
    kind: LaneCommandKind = LaneCommandKind.OPEN,
    session_id: int | None = None,
    payment_id: int | None = None,
    action: str = "gate.manual_open",
) -> LaneCommand:
    """Order a lane to act (in the caller's transaction). Audited as ``action`` (what caused
    it); announced on commit."""
    if not 0 < ttl_s <= MAX_COMMAND_TTL_S:
        raise InvalidInput(f"expiry must be within 1..{MAX_COMMAND_TTL_S} s", field="ttl_s")
    camera = db.get(Camera, camera_id)
    if camera is None:
        raise NotFound(f"camera {camera_id!r} does not exist")
    command = LaneCommand(
        id=uuid.uuid4(),
        camera_id=camera.id,
        lot_id=camera.lot_id,
        kind=kind.value,
        operator=operator,
        reason=reason,
        status="pending",
        issued_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
        deliveries=0,
        detail="",
        session_id=session_id,
        payment_id=payment_id,
    )
    if not camera.enabled or not lane_listening(camera, now=now):
        command.status = "failed"
        command.acked_at = now
        command.detail = (
            "lane offline: its agent holds no command connection; nothing was sent"
            if camera.enabled
            else "camera disabled"
        )
    db.add(command)
    db.flush()
    audit.record(
        db,
        actor=operator,
        action=action,
        target_type="camera",
        target_id=camera.id,
        reason=reason,
        details={"command_id": str(command.id), "kind": command.kind, "ttl_s": ttl_s,
                 "status": command.status,
                 "session_id": session_id, "payment_id": payment_id, "detail": command.detail},
    )  # fmt: skip
    _changed(db, command)
    return command


def offer(db: Session, *, camera_id: str, now: datetime, wait_s: float) -> list[WireCommand]:
    """The lane's poll: note that it listens, hand it every command it still has to act on."""
    camera = db.get(Camera, camera_id)
    if camera is None:
        raise NotFound(f"camera {camera_id!r} does not exist")
    camera.commands_poll_until = now + timedelta(seconds=wait_s)
    rows = db.scalars(
        select(LaneCommand)
        .where(
            LaneCommand.camera_id == camera_id,
            LaneCommand.status.in_(OPEN_STATES),
            LaneCommand.expires_at > now,
        )
        .order_by(LaneCommand.issued_at)
    ).all()
    wire = []
    for command in rows:
        command.deliveries += 1
        if command.status == "pending":
            command.status = "delivered"
            command.delivered_at = now
            audit.record(
                db, actor=camera_id, action="gate.command_delivered", target_type="camera",
                target_id=camera_id, details={"command_id": str(command.id)},
            )  # fmt: skip
            _changed(db, command)
        left = as_utc(command.expires_at) - now - TRANSIT_MARGIN
        wire.append(
            WireCommand(
                command_id=command.id,
                camera_id=command.camera_id,
                kind=LaneCommandKind(command.kind),
                issued_at=as_utc(command.issued_at),
                expires_at=as_utc(command.expires_at),
                ttl_ms=max(0, int(left.total_seconds() * 1000)),
                operator=command.operator,
                reason=command.reason,
            )
        )
    db.flush()
    return wire


def acknowledge(
    db: Session, *, camera_id: str, command_id: UUID, ack: CommandAck, now: datetime
) -> LaneCommand:
    """The lane's account of a command. The first account of a final state is kept, except a
    pulse, which always wins: the relay moved, whatever central had concluded meanwhile."""
    command = db.get(LaneCommand, command_id)
    if command is None:
        raise NotFound(f"command {command_id} does not exist")
    if command.camera_id != camera_id:
        raise Forbidden("this command belongs to another lane")
    outcome = ack.outcome.value
    if command.status == outcome or (command.status in FINAL_STATES and outcome != "pulsed"):
        return command  # a re-sent ack, or news older than what is known
    before = command.status
    command.status = outcome
    command.acked_at = now
    command.edge_at = ack.at
    command.detail = ack.detail[:300]
    audit.record(
        db, actor=camera_id, action=f"gate.command_{outcome}", target_type="camera",
        target_id=camera_id, reason=ack.detail[:500],
        details={"command_id": str(command.id), "before": before, "edge_at": ack.at.isoformat()},
    )  # fmt: skip
    _changed(db, command)
    db.flush()
    return command


def expire(db: Session, *, now: datetime) -> list[LaneCommand]:
    """Commands nobody acknowledged by their expiry (plus ``ACK_SLACK``) are ``expired``."""
    rows = db.scalars(
        select(LaneCommand).where(
            LaneCommand.status.in_(OPEN_STATES), LaneCommand.expires_at < now - ACK_SLACK
        )
    ).all()
    for command in rows:
        was = command.status
        command.status = "expired"
        command.acked_at = now
        command.detail = (
            "the lane took it but did not confirm a pulse before its expiry"
            if was == "delivered"
            else "the lane did not take it before its expiry"
        )
        audit.record(
            db, actor="central", action="gate.command_expired", target_type="camera",
            target_id=command.camera_id, reason=command.detail,
            details={"command_id": str(command.id)},
        )  # fmt: skip
        _changed(db, command)
    db.flush()
    return list(rows)


def get_command(db: Session, *, command_id: UUID) -> LaneCommand:
    command = db.get(LaneCommand, command_id)
    if command is None:
        raise NotFound(f"command {command_id} does not exist")
    return command


def list_commands(
    db: Session, *, camera_id: str | None = None, session_id: int | None = None, limit: int = 50
) -> list[LaneCommand]:
    query = select(LaneCommand).order_by(LaneCommand.issued_at.desc()).limit(limit)
    if camera_id:
        query = query.where(LaneCommand.camera_id == camera_id)
    if session_id is not None:
        query = query.where(LaneCommand.session_id == session_id)
    return list(db.scalars(query))

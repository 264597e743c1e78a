"""Lane commands: operators order (``/cameras/{id}/open``) and read their fate; each lane's
agent long-polls for its own and acknowledges what its relay did."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.central.clock import utcnow
from app.central.commands import service
from app.central.commands.schemas import CommandAckOut, CommandOut, ManualOpen
from app.central.core.waiters import RECHECK_S
from app.central.deps import DB, MAX_ROW_ID, CameraAuth, Guard, State
from app.central.errors import Forbidden
from app.contract import MAX_COMMAND_WAIT_S, CommandAck, LaneCommand, LaneCommands

router = APIRouter(tags=["commands"])


@router.post(
    "/cameras/{camera_id}/open", response_model=CommandOut, status_code=status.HTTP_202_ACCEPTED
)
def open_gate(camera_id: str, body: ManualOpen, db: DB, who: Guard, state: State) -> CommandOut:
    """Open a lane's barrier now. The answer is the command as issued: ``pending`` (it is on
    its way; follow it on the live feed or ``GET /commands/{id}``) or ``failed`` at once when
    the lane's agent is not connected."""
    command = service.issue(
        db,
        camera_id=camera_id,
        operator=who.username,
        reason=body.reason,
        now=utcnow(),
        ttl_s=body.ttl_s or state.settings.command_ttl_s,
    )
    db.commit()
    return CommandOut.model_validate(service.command_view(command))


@router.get("/commands", response_model=list[CommandOut])
def list_commands(
    db: DB,
    _: Guard,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    session_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CommandOut]:
    rows = service.list_commands(db, camera_id=camera_id, session_id=session_id, limit=limit)
    return [CommandOut.model_validate(service.command_view(c)) for c in rows]


@router.get("/commands/{command_id}", response_model=CommandOut)
def get_command(command_id: UUID, db: DB, _: Guard) -> CommandOut:
    return CommandOut.model_validate(
        service.command_view(service.get_command(db, command_id=command_id))
    )


def _offer(db: Session, camera_id: str, wait_s: float) -> list[LaneCommand]:
    try:
        commands = service.offer(db, camera_id=camera_id, now=utcnow(), wait_s=wait_s)
        db.commit()
        return commands
    except BaseException:
        db.rollback()
        raise


@router.get("/lanes/{camera_id}/commands", response_model=LaneCommands)
async def poll_commands(
    camera_id: str,
    request: Request,
    camera: CameraAuth,
    db: DB,
    state: State,
    wait_s: Annotated[float, Query(ge=0, le=MAX_COMMAND_WAIT_S)] = 20.0,
) -> LaneCommands:
    """The lane's long poll: answers at once with the commands it has to act on, or as soon as
    one is committed, or with none after ``wait_s``."""
    if camera.id != camera_id:
        raise Forbidden("this key belongs to another camera")
    waiters = state.command_waiters
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        wake = waiters.arm(camera_id)  # before reading: a commit in between still wakes us
        try:
            remaining = max(0.0, deadline - loop.time())
            commands = await run_in_threadpool(_offer, db, camera_id, remaining)
            if commands or remaining <= 0 or waiters.closing or await request.is_disconnected():
                return LaneCommands(commands=commands)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=min(remaining, RECHECK_S))
        finally:
            waiters.disarm(camera_id, wake)


@router.post("/lanes/{camera_id}/commands/{command_id}/ack", response_model=CommandAckOut)
def acknowledge(
    camera_id: str, command_id: UUID, body: CommandAck, camera: CameraAuth, db: DB
) -> CommandAckOut:
    if camera.id != camera_id:
        raise Forbidden("this key belongs to another camera")
    command = service.acknowledge(
        db, camera_id=camera.id, command_id=command_id, ack=body, now=utcnow()
    )
    db.commit()
    return CommandAckOut(command_id=command.id, status=command.status)

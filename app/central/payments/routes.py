from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import HTMLResponse

from app.central.clock import day_window, utcnow
from app.central.commands.schemas import CommandOut
from app.central.commands.service import command_view
from app.central.deps import DB, MAX_ROW_ID, Guard, Manager, Offset, RowId, State
from app.central.errors import Forbidden
from app.central.operators.service import Role
from app.central.payments import service
from app.central.payments.schemas import Method, PaymentIn, PaymentOut, PaymentTaken
from app.central.sessions.schemas import SessionOut

router = APIRouter(tags=["payments"])


@router.post(
    "/sessions/{session_id}/payments",
    response_model=PaymentTaken,
    status_code=status.HTTP_201_CREATED,
)
def take_payment(
    session_id: RowId,
    body: PaymentIn,
    db: DB,
    who: Guard,
    state: State,
) -> PaymentTaken:
    """Settle what the session owes now. A held exit is closed and its lane opened; a fee may
    be waived (managers only) with a reason."""
    if body.method == "waived" and who.role < Role.manager:
        raise Forbidden("only a manager may waive a fee")
    taken = service.take_payment(
        db,
        session_id=session_id,
        method=body.method,
        amount=body.amount,
        reference=body.reference,
        note=body.note,
        open_camera_id=body.camera_id,
        actor=who.username,
        now=utcnow(),
        tz=state.settings.timezone,
        command_ttl_s=state.settings.command_ttl_s,
    )
    db.commit()
    return PaymentTaken(
        payment=PaymentOut.model_validate(taken.payment),
        session=SessionOut.model_validate(taken.session),
        command=CommandOut.model_validate(command_view(taken.command)) if taken.command else None,
    )


@router.get("/payments", response_model=list[PaymentOut])
def list_payments(
    db: DB,
    _: Manager,
    state: State,
    start: date | None = None,
    end: date | None = None,
    method: Method | None = None,
    lot_id: Annotated[str | None, Query(max_length=64)] = None,
    session_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[PaymentOut]:
    """Payments taken over local days ``start``..``end`` (both included), newest first."""
    tz = state.settings.timezone
    since = day_window(day=start, tz=tz, field="start").start if start else None
    until = day_window(day=end, tz=tz, field="end").end if end else None
    rows = service.list_payments(
        db, start=since, end=until, method=method, lot_id=lot_id, session_id=session_id,
        limit=limit, offset=offset,
    )  # fmt: skip
    return [PaymentOut.model_validate(p) for p in rows]


@router.get("/payments/{payment_id}", response_model=PaymentOut)
def get_payment(payment_id: RowId, db: DB, _: Guard) -> PaymentOut:
    return PaymentOut.model_validate(service.get_payment(db, payment_id=payment_id))


@router.get("/payments/{payment_id}/receipt", response_class=HTMLResponse)
def receipt(
    payment_id: RowId, db: DB, _: Guard, state: State, lang: Literal["vi", "en"] = "vi"
) -> HTMLResponse:
    """A printable receipt, in Vietnamese (default) or English."""
    return HTMLResponse(
        service.receipt_html(db, payment_id=payment_id, lang=lang, tz=state.settings.timezone),
        headers={"Cache-Control": "no-store"},
    )

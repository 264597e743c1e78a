"""Payments: a cashier or guard settles a session (cash, card, transfer, or waived with a
reason). Paying a held exit closes the session and opens the lane it waits at through the
command channel; paying before the exit lets the vehicle leave without a stop within the lot's
grace period (``sessions.rules.amount_due``)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.central.audit import service as audit
from app.central.commands import service as commands
from app.central.commands.models import LaneCommand
from app.central.core.lots import Lot
from app.central.errors import Conflict, InvalidInput, NotFound
from app.central.live.service import announce
from app.central.payments.models import Payment
from app.central.sessions import service as sessions
from app.central.sessions.models import ParkingSession

METHODS = ("cash", "card", "transfer", "waived")


@dataclass(frozen=True)
class Taken:
    payment: Payment
    session: ParkingSession
    command: LaneCommand | None


def payment_view(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "session_id": payment.session_id,
        "lot_id": payment.lot_id,
        "due": payment.due,
        "amount": payment.amount,
        "method": payment.method,
        "reference": payment.reference,
        "note": payment.note,
        "operator": payment.operator,
        "camera_id": payment.camera_id,
        "command_id": str(payment.command_id) if payment.command_id else None,
        "paid_at": payment.paid_at.isoformat(),
    }


def take_payment(
    db: Session,
    *,
    session_id: int,
    method: str,
    actor: str,
    now: datetime,
    tz: str,
    command_ttl_s: float,
    amount: int | None = None,
    reference: str = "",
    note: str = "",
    open_camera_id: str | None = None,
) -> Taken:
    """Settle what the session owes now, in the caller's transaction (audited, announced)."""
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}", field="method")
    session = db.get(ParkingSession, session_id, with_for_update=True)
    if session is None:
        raise NotFound(f"session {session_id} does not exist")
    if session.status == "void":
        raise Conflict(f"session {session_id} is void", field="session_id")
    due = sessions.amount_due(db, session=session, now=now, tz=tz)
    if due <= 0:
        raise Conflict(f"nothing is due for session {session_id}", field="session_id")
    if method == "waived" and len(note.strip()) < 3:
        raise InvalidInput("a waived fee needs a reason", field="note")
    if method in ("card", "transfer") and not reference.strip():
        raise InvalidInput(f"a {method} payment needs its reference", field="reference")
    if amount is not None and method != "waived" and amount != due:
        raise InvalidInput(f"amount must be the amount due, {due}", field="amount")
    payment = Payment(
        session_id=session.id,
        lot_id=session.lot_id,
        due=due,
        amount=0 if method == "waived" else due,
        method=method,
        reference=reference.strip(),
        note=note.strip(),
        operator=actor,
        paid_at=now,
    )
    db.add(payment)
    session.paid_amount = (session.paid_amount or 0) + due  # settled, paid or waived
    session.paid_at = now
    held = session.status == "open" and session.exit_held_at is not None
    if held:
        session.status = "closed"
        session.exited_at = session.exit_held_at
    db.flush()
    # A vehicle held at an exit (its session open, or closed by hand while it waited) is let
    # out at the lane it waits at, unless the cashier names another.
    waiting = session.exit_held_camera_id if session.exit_held_at is not None else None
    lane = open_camera_id or waiting
    command = None
    if lane is not None:
        command = commands.issue(
            db,
            camera_id=lane,
            operator=actor,
            reason=f"paid: {method} {due}",
            now=now,
            ttl_s=command_ttl_s,
            session_id=session.id,
            payment_id=payment.id,
            action="gate.open_paid",
        )
        payment.camera_id = lane
        payment.command_id = command.id
    audit.record(
        db,
        actor=actor,
        action="payment.take",
        target_type="session",
        target_id=str(session.id),
        reason=payment.note,
        details={
            "payment_id": payment.id, "due": due, "amount": payment.amount, "method": method,
            "reference": payment.reference, "lane": lane, "closed_held_exit": held,
        },
    )  # fmt: skip
    db.flush()
    announce(db, kind="payment", data=payment_view(payment))
    announce(db, kind="session_updated", data=sessions.session_view(session))
    return Taken(payment, session, command)


def get_payment(db: Session, *, payment_id: int) -> Payment:
    payment = db.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"payment {payment_id} does not exist")
    return payment


def list_payments(
    db: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    method: str | None = None,
    lot_id: str | None = None,
    session_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Payment]:
    query = select(Payment).order_by(Payment.paid_at.desc(), Payment.id.desc())
    if start is not None:
        query = query.where(Payment.paid_at >= start)
    if end is not None:
        query = query.where(Payment.paid_at < end)
    if method:
        query = query.where(Payment.method == method)
    if lot_id:
        query = query.where(Payment.lot_id == lot_id)
    if session_id is not None:
        query = query.where(Payment.session_id == session_id)
    return list(db.scalars(query.limit(limit).offset(offset)))


def revenue_by_method(
    db: Session, *, start: datetime, end: datetime, lot_id: str | None = None
) -> list[dict[str, Any]]:
    """Per lot and method within [start, end): payments, money taken, fees settled."""
    query = (
        select(
            Payment.lot_id,
            Payment.method,
            func.count(),
            func.coalesce(func.sum(Payment.amount), 0),
            func.coalesce(func.sum(Payment.due), 0),
        )
        .where(Payment.paid_at >= start, Payment.paid_at < end)
        .group_by(Payment.lot_id, Payment.method)
        .order_by(Payment.lot_id, Payment.method)
    )
    if lot_id:
        query = query.where(Payment.lot_id == lot_id)
    return [
        {"lot_id": lot, "method": m, "payments": int(n), "amount": int(a), "settled": int(d)}
        for lot, m, n, a, d in db.execute(query)
    ]


_RECEIPT_TEXT = {
    "en": {
        "title": "Parking receipt",
        "receipt": "Receipt",
        "lot": "Lot",
        "plate": "Plate",
        "entered": "Entered",
        "exited": "Left",
        "fee": "Fee",
        "paid": "Paid",
        "method": "Method",
        "reference": "Reference",
        "cashier": "Cashier",
        "time": "Paid at",
        "waived": "Waived",
        "note": "Reason",
        "thanks": "Thank you. Drive safely.",
        "methods": {"cash": "Cash", "card": "Card", "transfer": "Bank transfer",
                    "waived": "Waived"},
    },
    "vi": {
        "title": "Biên lai gửi xe",
        "receipt": "Biên lai số",
        "lot": "Bãi xe",
        "plate": "Biển số",
        "entered": "Giờ vào",
        "exited": "Giờ ra",
        "fee": "Phí gửi xe",
        "paid": "Đã thu",
        "method": "Hình thức",
        "reference": "Mã giao dịch",
        "cashier": "Thu ngân",
        "time": "Thời gian thu",
        "waived": "Miễn phí",
        "note": "Lý do",
        "thanks": "Cảm ơn quý khách. Chúc thượng lộ bình an.",
        "methods": {"cash": "Tiền mặt", "card": "Thẻ", "transfer": "Chuyển khoản",
                    "waived": "Miễn phí"},
    },
}  # fmt: skip


def _money(value: int, lang: str) -> str:
    grouped = f"{value:,}".replace(",", "." if lang == "vi" else ",")
    return f"{grouped} ₫"


def receipt_html(db: Session, *, payment_id: int, lang: str, tz: str) -> str:
    """A printable receipt (80 mm roll or A4), every value escaped."""
    if lang not in _RECEIPT_TEXT:
        raise InvalidInput("lang must be vi or en", field="lang")
    payment = get_payment(db, payment_id=payment_id)
    session = db.get(ParkingSession, payment.session_id)
    lot = db.get(Lot, payment.lot_id)
    text: dict[str, Any] = _RECEIPT_TEXT[lang]
    zone = ZoneInfo(tz)

    def when(value: datetime | None) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else "—"

    rows = [
        (text["lot"], lot.name if lot else payment.lot_id),
        (text["plate"], session.plate_display if session else ""),
        (text["entered"], when(session.entered_at if session else None)),
        (text["exited"], when(session.exited_at if session else None)),
        (text["fee"], _money(payment.due, lang)),
        (text["paid"], _money(payment.amount, lang)),
        (text["method"], text["methods"].get(payment.method, payment.method)),
    ]
    if payment.reference:
        rows.append((text["reference"], payment.reference))
    if payment.method == "waived":
        rows.append((text["note"], payment.note))
    rows += [(text["cashier"], payment.operator), (text["time"], when(payment.paid_at))]
    body = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    number = f"{payment.lot_id}-{payment.id:06d}"
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{html.escape(text["title"])} {html.escape(number)}</title>
<link rel="stylesheet" href="/receipt.css"></head>
<body>
<h1>{html.escape(text["title"])}</h1>
<p class="no">{html.escape(text["receipt"])} <span id="receipt-no">{html.escape(number)}</span></p>
<table id="receipt">
{body}
</table>
<p class="thanks">{html.escape(text["thanks"])}</p>
</body></html>
"""

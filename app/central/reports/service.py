"""What the operators read at a glance: the day's counts and revenue per lot, the day's sessions
as CSV, and one session with everything known about it (events, corrections, anomalies).

Read-only: nothing here writes. A "day" is a local calendar day in the lots' timezone, so
revenue is booked on the day a vehicle left, at its current fee (after any correction).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Executable, case, func, or_, select
from sqlalchemy.orm import Session

from app.central.audit.models import AuditEntry
from app.central.clock import DayWindow, day_window
from app.central.commands.models import LaneCommand
from app.central.core.events import PlateEvent
from app.central.core.lots import Lot
from app.central.errors import InvalidInput, NotFound
from app.central.payments.models import Payment
from app.central.sessions.models import Anomaly, ParkingSession

CSV_COLUMNS = (
    "session_id",
    "lot_id",
    "plate",
    "vehicle_type",
    "status",
    "entered_at",
    "exited_at",
    "minutes",
    "fee",
    "fee_rule",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class LotDay:
    lot_id: str
    name: str
    capacity: int
    inside_now: int = 0
    entries: int = 0
    exits: int = 0
    paid_exits: int = 0
    revenue: int = 0
    events: int = 0
    manual_opens: int = 0
    anomalies: dict[str, int] = field(default_factory=dict)

    def add(self, other: LotDay) -> None:
        for name in (
            "capacity",
            "inside_now",
            "entries",
            "exits",
            "paid_exits",
            "revenue",
            "events",
            "manual_opens",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind, count in other.anomalies.items():
            self.anomalies[kind] = self.anomalies.get(kind, 0) + count


@dataclass(frozen=True)
class DaySummary:
    window: DayWindow
    lots: list[LotDay]
    totals: LotDay


def _grouped(db: Session, query: Executable) -> dict[str, tuple[Any, ...]]:
    return {row[0]: tuple(row[1:]) for row in db.execute(query)}


def day_summary(db: Session, *, window: DayWindow) -> DaySummary:
    """Counts and revenue of one local day, per lot and in total, in a handful of queries."""
    start, end = window.start, window.end
    entered = _grouped(
        db,
        select(ParkingSession.lot_id, func.count())
        .where(
            ParkingSession.entered_at >= start,
            ParkingSession.entered_at < end,
            ParkingSession.status != "void",  # a phantom was never a vehicle
        )
        .group_by(ParkingSession.lot_id),
    )
    exited = _grouped(
        db,
        select(
            ParkingSession.lot_id,
            func.count(),
            func.sum(case((ParkingSession.fee > 0, 1), else_=0)),
        )
        .where(
            ParkingSession.status == "closed",
            ParkingSession.exited_at >= start,
            ParkingSession.exited_at < end,
        )
        .group_by(ParkingSession.lot_id),
    )
    inside = _grouped(
        db,
        select(ParkingSession.lot_id, func.count())
        .where(ParkingSession.status == "open")
        .group_by(ParkingSession.lot_id),
    )
    events = _grouped(
        db,
        select(PlateEvent.lot_id, func.count())
        .where(PlateEvent.received_at >= start, PlateEvent.received_at < end)
        .group_by(PlateEvent.lot_id),
    )
    # Money taken (payments), booked on the day it was taken.
    taken = _grouped(
        db,
        select(Payment.lot_id, func.coalesce(func.sum(Payment.amount), 0))
        .where(Payment.paid_at >= start, Payment.paid_at < end)
        .group_by(Payment.lot_id),
    )
    # Barrier opens an operator ordered by hand (a payment's own open is not one).
    opens = _grouped(
        db,
        select(LaneCommand.lot_id, func.count())
        .where(
            LaneCommand.payment_id.is_(None),
            LaneCommand.issued_at >= start,
            LaneCommand.issued_at < end,
        )
        .group_by(LaneCommand.lot_id),
    )
    anomalies: dict[str, dict[str, int]] = {}
    for lot_id, kind, count in db.execute(
        select(Anomaly.lot_id, Anomaly.kind, func.count())
        .where(Anomaly.created_at >= start, Anomaly.created_at < end)
        .group_by(Anomaly.lot_id, Anomaly.kind)
    ):
        anomalies.setdefault(lot_id, {})[kind] = int(count)

    lots: list[LotDay] = []
    for lot in db.scalars(select(Lot).order_by(Lot.id)):
        exits, paid = exited.get(lot.id, (0, 0))
        revenue = taken.get(lot.id, (0,))[0]
        lots.append(
            LotDay(
                lot_id=lot.id,
                name=lot.name,
                capacity=lot.capacity,
                inside_now=int(inside.get(lot.id, (0,))[0]),
                entries=int(entered.get(lot.id, (0,))[0]),
                exits=int(exits),
                paid_exits=int(paid or 0),
                revenue=int(revenue or 0),
                events=int(events.get(lot.id, (0,))[0]),
                manual_opens=int(opens.get(lot.id, (0,))[0]),
                anomalies=anomalies.get(lot.id, {}),
            )
        )
    totals = LotDay(lot_id="", name="", capacity=0)
    for lot_day in lots:
        totals.add(lot_day)
    return DaySummary(window=window, lots=lots, totals=totals)


def day_sessions(db: Session, *, window: DayWindow) -> list[ParkingSession]:
    """Sessions that began or ended within the day, oldest first."""
    start, end = window.start, window.end
    return list(
        db.scalars(
            select(ParkingSession)
            .where(
                or_(
                    (ParkingSession.entered_at >= start) & (ParkingSession.entered_at < end),
                    (ParkingSession.exited_at >= start) & (ParkingSession.exited_at < end),
                )
            )
            .order_by(ParkingSession.id)
        )
    )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).isoformat(timespec="seconds") if value else ""


def sessions_csv(sessions: Iterable[ParkingSession], *, tz: str) -> str:
    """The day's sessions for a spreadsheet: local times, whole-currency fees, no formulas."""
    zone = ZoneInfo(tz)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for s in sessions:
        exit_basis = (s.fee_basis or {}).get("exit") or {}
        writer.writerow(
            [
                _cell(v)
                for v in (
                    s.id,
                    s.lot_id,
                    s.plate_display,
                    s.vehicle_type,
                    s.status,
                    _local(s.entered_at, zone),
                    _local(s.exited_at, zone),
                    exit_basis.get("minutes", ""),
                    s.fee,
                    exit_basis.get("rule", ""),
                )
            ]
        )
    return out.getvalue()


@dataclass(frozen=True)
class SessionDetail:
    session: ParkingSession
    entry: PlateEvent | None
    exit: PlateEvent | None
    history: list[AuditEntry]
    anomalies: list[Anomaly]
    payments: list[Payment]
    commands: list[LaneCommand]


def session_detail(db: Session, *, session_id: int) -> SessionDetail:
    """One session with its entry and exit events, its corrections and its anomalies."""
    session = db.get(ParkingSession, session_id)
    if session is None:
        raise NotFound(f"session {session_id} does not exist")
    entry = db.get(PlateEvent, session.entry_event_id) if session.entry_event_id else None
    exit_ = db.get(PlateEvent, session.exit_event_id) if session.exit_event_id else None
    history = list(
        db.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == "session", AuditEntry.target_id == str(session.id))
            .order_by(AuditEntry.id)
        )
    )
    event_ids = [e for e in (session.entry_event_id, session.exit_event_id) if e is not None]
    related = Anomaly.session_id == session.id
    if event_ids:
        related = or_(related, Anomaly.event_id.in_(event_ids))
    anomalies = list(db.scalars(select(Anomaly).where(related).order_by(Anomaly.id)))
    payments = list(
        db.scalars(select(Payment).where(Payment.session_id == session.id).order_by(Payment.id))
    )
    commands = list(
        db.scalars(
            select(LaneCommand)
            .where(LaneCommand.session_id == session.id)
            .order_by(LaneCommand.issued_at)
        )
    )
    return SessionDetail(session, entry, exit_, history, anomalies, payments, commands)


MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class Revenue:
    first: date
    last: date
    timezone: str
    start: datetime
    end: datetime
    by_method: list[dict[str, Any]]
    totals: dict[str, int]


def revenue(db: Session, *, first: date, last: date, tz: str, lot_id: str | None = None) -> Revenue:
    """Money taken per lot and method over local days ``first``..``last`` (both included)."""
    from app.central.payments.service import revenue_by_method

    if last < first:
        raise InvalidInput("the range ends before it starts", field="end", where="query")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidInput(
            f"a range covers at most {MAX_RANGE_DAYS} days", field="end", where="query"
        )
    start = day_window(day=first, tz=tz, field="start").start
    end = day_window(day=last, tz=tz, field="end").end
    rows = revenue_by_method(db, start=start, end=end, lot_id=lot_id)
    totals = {
        "payments": sum(r["payments"] for r in rows),
        "amount": sum(r["amount"] for r in rows),
        "settled": sum(r["settled"] for r in rows),
        "waived": sum(r["settled"] for r in rows if r["method"] == "waived"),
    }
    return Revenue(first, last, tz, start, end, rows, totals)

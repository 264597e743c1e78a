from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from app.central.audit.schemas import AuditOut
from app.central.commands.schemas import CommandRow
from app.central.events.schemas import EventOut
from app.central.payments.schemas import PaymentOut
from app.central.sessions.schemas import AnomalyOut, SessionOut


class LotDayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    lot_id: str
    name: str
    capacity: int
    inside_now: int
    entries: int
    exits: int
    paid_exits: int
    revenue: int
    events: int
    manual_opens: int
    anomalies: dict[str, int]


class DaySummaryOut(BaseModel):
    day: date
    timezone: str
    start: datetime
    end: datetime
    lots: list[LotDayOut]
    totals: LotDayOut


class SessionDetailOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    session: SessionOut
    entry: EventOut | None
    exit: EventOut | None
    history: list[AuditOut]
    anomalies: list[AnomalyOut]
    payments: list[PaymentOut]
    commands: list[CommandRow]


class RevenueRow(BaseModel):
    lot_id: str
    method: str
    payments: int
    amount: int
    settled: int


class RevenueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    first: date
    last: date
    timezone: str
    start: datetime
    end: datetime
    by_method: list[RevenueRow]
    totals: dict[str, int]

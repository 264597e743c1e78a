from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Response

from app.central.clock import DayWindow, day_window, local_day, utcnow
from app.central.deps import DB, Guard, Manager, RowId, State
from app.central.reports import service
from app.central.reports.schemas import DaySummaryOut, LotDayOut, RevenueOut, SessionDetailOut

router = APIRouter(prefix="/reports", tags=["reports"])


def _window(day: date | None, state: State) -> DayWindow:
    tz = state.settings.timezone
    return day_window(day=day or local_day(now=utcnow(), tz=tz), tz=tz)


@router.get("/day", response_model=DaySummaryOut)
def day_summary(db: DB, _: Guard, state: State, day: date | None = None) -> DaySummaryOut:
    """Counts and revenue of one local day (default: today in the lots' timezone)."""
    summary = service.day_summary(db, window=_window(day, state))
    return DaySummaryOut(
        day=summary.window.day,
        timezone=summary.window.timezone,
        start=summary.window.start,
        end=summary.window.end,
        lots=[LotDayOut.model_validate(lot) for lot in summary.lots],
        totals=LotDayOut.model_validate(summary.totals),
    )


@router.get("/day.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def day_csv(db: DB, _: Manager, state: State, day: date | None = None) -> Response:
    """The sessions that began or ended on the day, for a spreadsheet (managers)."""
    window = _window(day, state)
    text = service.sessions_csv(service.day_sessions(db, window=window), tz=window.timezone)
    return Response(
        # A byte-order mark so that spreadsheets read the UTF-8 as UTF-8.
        "\ufeff" + text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="sessions-{window.day.isoformat()}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/sessions/{session_id}", response_model=SessionDetailOut)
def session_detail(session_id: RowId, db: DB, _: Guard) -> SessionDetailOut:
    """One session with its entry and exit events side by side, corrections and anomalies."""
    return SessionDetailOut.model_validate(service.session_detail(db, session_id=session_id))


@router.get("/revenue", response_model=RevenueOut)
def revenue(
    db: DB,
    _: Manager,
    state: State,
    start: date | None = None,
    end: date | None = None,
    lot_id: str | None = None,
) -> RevenueOut:
    """Money taken by method over local days ``start``..``end`` (both included; default today)."""
    today = local_day(now=utcnow(), tz=state.settings.timezone)
    result = service.revenue(
        db, first=start or end or today, last=end or start or today,
        tz=state.settings.timezone, lot_id=lot_id,
    )  # fmt: skip
    return RevenueOut.model_validate(result)

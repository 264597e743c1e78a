"""Time comes through here so tests can pin it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.central.errors import InvalidInput

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Local calendar days (reports, revenue ranges), here so no feature imports another for them.
@dataclass(frozen=True)
class DayWindow:
    """One local calendar day as a half-open UTC interval."""

    day: date
    timezone: str
    start: datetime
    end: datetime


def local_day(*, now: datetime, tz: str) -> date:
    return now.astimezone(ZoneInfo(tz)).date()


# Days a report may ask for: a date query far in the past (or future) is a 422, not a 500.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2199, 12, 31)


def day_window(*, day: date, tz: str, field: str = "day") -> DayWindow:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise InvalidInput(f"{field} must be between {EARLIEST_DAY} and {LATEST_DAY}", field=field)
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return DayWindow(day=day, timezone=tz, start=start, end=end)

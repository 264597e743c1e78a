"""The fee table: free minutes, started hours, daily cap, overnight fee."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.central.tariffs.models import Tariff
from app.central.tariffs.service import compute_fee, midnights_crossed

TZ = "Asia/Ho_Chi_Minh"
ZONE = ZoneInfo(TZ)
TARIFF = Tariff(
    lot_id="x",
    vehicle_type="car",
    free_minutes=15,
    hourly_rate=20_000,
    daily_cap=150_000,
    overnight_fee=30_000,
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=ZONE)


@pytest.mark.parametrize(
    ("entered", "exited", "expected", "rule"),
    [
        (at(10, 9), at(10, 9, 15), 0, "free_minutes"),  # exactly the grace period
        (at(10, 9), at(10, 9, 16), 20_000, "tariff"),  # one started hour
        (at(10, 9), at(10, 11), 40_000, "tariff"),  # two full hours
        (at(10, 9), at(10, 11, 1), 60_000, "tariff"),  # third hour started
        (at(10, 8), at(10, 20), 150_000, "tariff"),  # 12 h capped at the daily cap
        (at(10, 20), at(11, 8), 150_000 + 30_000, "tariff"),  # overnight: cap + one night
        (at(10, 9), at(12, 10), 2 * 150_000 + 20_000 + 2 * 30_000, "tariff"),  # two days +1 h
    ],
)
def test_fee_table(entered: datetime, exited: datetime, expected: int, rule: str) -> None:
    fee = compute_fee(TARIFF, entered_at=entered, exited_at=exited, tz=TZ)
    assert (fee.total, fee.rule) == (expected, rule)


def test_no_tariff_is_free_and_says_so() -> None:
    fee = compute_fee(None, entered_at=at(10, 9), exited_at=at(10, 19), tz=TZ)
    assert (fee.total, fee.rule) == (0, "no_tariff")


def test_uncapped_tariff_charges_every_hour() -> None:
    tariff = Tariff(
        lot_id="x",
        vehicle_type="car",
        free_minutes=0,
        hourly_rate=5_000,
        daily_cap=0,
        overnight_fee=0,
    )
    assert (
        compute_fee(tariff, entered_at=at(10, 0, 30), exited_at=at(10, 10, 30), tz=TZ).total
        == 50_000
    )


def test_midnights_are_counted_in_local_time() -> None:
    # 16:30 UTC is 23:30 in Ho Chi Minh City: crossing local midnight an hour later.
    start = datetime(2026, 11, 10, 16, 30, tzinfo=ZoneInfo("UTC"))
    assert midnights_crossed(start, start + timedelta(hours=1), ZONE) == 1
    assert midnights_crossed(start, start + timedelta(minutes=20), ZONE) == 0
    assert midnights_crossed(start, start + timedelta(days=3), ZONE) == 3

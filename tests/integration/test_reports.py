"""Reports the dashboard reads: the day's counts and revenue per lot (local day), the day's
sessions as CSV, and one session's detail. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.central.payments.service import take_payment
from app.central.reports.service import sessions_csv
from app.central.sessions.models import ParkingSession
from app.central.tariffs.service import put_tariff
from tests.conftest import World, event_body, token

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")  # the settings' default timezone


# Days of the tests: a week and more ago (central takes events up to 30 days old).
DAY_1 = (datetime.now(LOCAL) - timedelta(days=10)).date()
DAYS = {
    "2024-03-10": DAY_1,
    "2024-03-11": DAY_1 + timedelta(days=1),
    "2024-05-02": DAY_1 + timedelta(days=2),
    "2024-05-03": DAY_1 + timedelta(days=3),
}


def day(text: str) -> str:
    """The test's day written as in the scenario (``2024-03-10``) -> the real day it stands for."""
    return DAYS[text].isoformat()


def at(text: str) -> datetime:
    """A local wall-clock time in the lots' timezone, on the day the scenario names."""
    date_text, _, clock = text.partition("T")
    return datetime.fromisoformat(f"{day(date_text)}T{clock}").replace(tzinfo=LOCAL)


def visit(
    client: TestClient,
    world: World,
    plate: str,
    entered: datetime,
    left: datetime | None,
    db: Session | None = None,
) -> int:
    """A vehicle's stay; with ``db``, a held exit is paid in cash a minute after the read."""
    entry = client.post(
        "/api/v1/events",
        json=event_body("lane-in", plate, at=entered),
        headers={"X-API-Key": world.entry_key},
    )
    assert entry.status_code == 200, entry.text
    if left is not None:
        exit_ = client.post(
            "/api/v1/events",
            json=event_body("lane-out", plate, at=left),
            headers={"X-API-Key": world.exit_key},
        )
        assert exit_.status_code == 200, exit_.text
        if db is not None and exit_.json()["decision"]["action"] == "hold":
            take_payment(
                db, session_id=exit_.json()["session_id"], method="cash", actor="guard",
                now=left + timedelta(minutes=1), tz="Asia/Ho_Chi_Minh", command_ttl_s=10,
            )  # fmt: skip
            db.commit()
    session_id: int = entry.json()["session_id"]
    return session_id


def test_day_summary_books_revenue_on_the_local_payment_day(
    client: TestClient, world: World, db: Session
) -> None:
    put_tariff(
        db, lot_id="lot-a", vehicle_type="car", free_minutes=15, hourly_rate=20_000,
        daily_cap=150_000, overnight_fee=30_000,
    )  # fmt: skip
    db.commit()
    # 09:00-11:30: three started hours. 23:00-01:00 next day: two hours and one night.
    visit(client, world, "51F-111.11", at("2024-03-10T09:00"), at("2024-03-10T11:30"), db)
    visit(client, world, "51F-222.22", at("2024-03-10T23:00"), at("2024-03-11T01:00"), db)
    # 00:30 local on the 11th is still the 10th in UTC: the local day decides.
    visit(client, world, "51F-333.33", at("2024-03-11T00:30"), None)
    guard = token(client, "guard")

    first = client.get("/api/v1/reports/day", params={"day": day("2024-03-10")}, headers=guard)
    second = client.get("/api/v1/reports/day", params={"day": day("2024-03-11")}, headers=guard)
    assert first.status_code == second.status_code == 200, first.text
    day1, day2 = first.json(), second.json()
    assert day1["timezone"] == "Asia/Ho_Chi_Minh"
    assert datetime.fromisoformat(day1["start"]) == at("2024-03-10T00:00")
    lot1 = {lot["lot_id"]: lot for lot in day1["lots"]}["lot-a"]
    lot2 = {lot["lot_id"]: lot for lot in day2["lots"]}["lot-a"]
    assert (lot1["entries"], lot1["exits"], lot1["revenue"]) == (2, 1, 3 * 20_000)
    assert (lot2["entries"], lot2["exits"], lot2["revenue"]) == (1, 1, 2 * 20_000 + 30_000)
    assert lot1["paid_exits"] == lot2["paid_exits"] == 1
    assert lot1["inside_now"] == lot2["inside_now"] == 1
    assert day1["totals"]["revenue"] == 3 * 20_000
    assert day2["totals"]["entries"] == 1


def test_today_counts_events_manual_opens_and_anomalies(client: TestClient, world: World) -> None:
    guard = token(client, "guard")
    before = client.get("/api/v1/reports/day", headers=guard).json()["totals"]
    client.post(
        "/api/v1/events",
        json=event_body("lane-in", "29A-555.55", confidence=0.3),
        headers={"X-API-Key": world.entry_key},
    )
    opened = client.post(
        "/api/v1/cameras/lane-out/open", json={"reason": "ticket printer jammed"}, headers=guard
    )
    assert opened.status_code == 202
    after = client.get("/api/v1/reports/day", headers=guard).json()["totals"]
    assert after["events"] == before["events"] + 1
    assert after["entries"] == before["entries"] + 1
    assert after["manual_opens"] == before["manual_opens"] + 1
    low = after["anomalies"].get("low_confidence", 0) - before["anomalies"].get("low_confidence", 0)
    assert low == 1


def test_day_csv_lists_the_days_sessions_in_local_time(
    client: TestClient, world: World, db: Session
) -> None:
    visit(client, world, "51F-444.44", at("2024-05-02T08:00"), at("2024-05-02T08:40"), db)
    visit(client, world, "51F-555.55", at("2024-05-03T08:00"), None)  # another day
    response = client.get(
        "/api/v1/reports/day.csv",
        params={"day": day("2024-05-02")},
        headers=token(client, "manager"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="sessions-{day("2024-05-02")}.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text.removeprefix("\ufeff"))))
    assert [r["plate"] for r in rows] == ["51F-444.44"]
    row = rows[0]
    assert row["entered_at"] == f"{day('2024-05-02')}T08:00:00+07:00"
    assert row["exited_at"] == f"{day('2024-05-02')}T08:40:00+07:00"
    assert (row["minutes"], row["fee"], row["fee_rule"]) == ("40", "20000", "tariff")


def test_day_csv_is_for_managers(client: TestClient, world: World) -> None:
    response = client.get("/api/v1/reports/day.csv", headers=token(client, "guard"))
    assert response.status_code == 403
    assert client.get("/api/v1/reports/day.csv").status_code == 401


def test_csv_cells_never_start_a_formula() -> None:
    session = ParkingSession(
        id=7,
        lot_id="lot-a",
        plate_display="=HYPERLINK(1)",
        vehicle_type="-car",
        status="closed",
        entered_at=datetime(2024, 1, 1, tzinfo=UTC),
        exited_at=None,
        fee=None,
        fee_basis=None,
    )
    row = next(csv.DictReader(io.StringIO(sessions_csv([session], tz="UTC"))))
    assert row["plate"] == "'=HYPERLINK(1)"
    assert row["vehicle_type"] == "'-car"
    assert row["entered_at"] == "2024-01-01T00:00:00+00:00"


def test_session_detail_has_both_events_corrections_and_anomalies(
    client: TestClient, world: World
) -> None:
    entered = datetime.now(UTC) - timedelta(minutes=50)
    session_id = visit(client, world, "51G-123.45", entered, None)
    client.post(
        "/api/v1/events",
        json=event_body("lane-out", "51G-123.46", confidence=0.81),
        headers={"X-API-Key": world.exit_key},
    )
    corrected = client.patch(
        f"/api/v1/sessions/{session_id}",
        json={"plate": "51G-123.46", "reason": "entry read 5 as 6"},
        headers=token(client, "manager"),
    )
    assert corrected.status_code == 200, corrected.text

    detail = client.get(f"/api/v1/reports/sessions/{session_id}", headers=token(client, "guard"))
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["session"]["plate"] == "51G-123.46"
    assert body["entry"]["plate"] == "51G-123.45"
    assert body["exit"]["plate"] == "51G-123.46"
    assert body["exit"]["confidence"] == 0.81
    assert body["entry"]["direction"] == "entry"
    assert body["exit"]["direction"] == "exit"
    assert [(h["action"], h["reason"]) for h in body["history"]] == [
        ("session.correct_plate", "entry read 5 as 6")
    ]
    assert "plate_mismatch" in {a["kind"] for a in body["anomalies"]}


def test_unknown_session_detail_is_404(client: TestClient, world: World) -> None:
    response = client.get("/api/v1/reports/sessions/999999", headers=token(client, "guard"))
    assert response.status_code == 404

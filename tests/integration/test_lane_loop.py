"""The lane's loop on central: commands to a lane (long poll, ack, expiry), payment at exit,
prepayment within the grace period, and the exceptions an operator resolves. SQLite and
PostgreSQL; the cross-instance wake of a poll on PostgreSQL with two real servers."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.commands import service as commands
from app.central.core.events import PlateEvent
from app.central.core.lots import Lot, occupancy
from app.central.db import Database
from app.central.main import create_app
from app.central.payments.service import take_payment
from app.central.sessions import service as sessions
from app.central.sessions.models import Anomaly, ParkingSession
from app.contract import CommandAck, CommandOutcome
from support.server import serving
from tests.conftest import PASSWORD, World, build_world, event_body, make_settings, token

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def post_event(client: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/events", json=body, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def poll(client: TestClient, camera: str, key: str, wait_s: float = 0) -> list[dict[str, Any]]:
    response = client.get(
        f"/api/v1/lanes/{camera}/commands", params={"wait_s": wait_s}, headers={"X-API-Key": key}
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["commands"]
    return found


def ack(client: TestClient, camera: str, key: str, command_id: str, outcome: str) -> Any:
    return client.post(
        f"/api/v1/lanes/{camera}/commands/{command_id}/ack",
        json={"outcome": outcome, "at": datetime.now(UTC).isoformat(), "detail": ""},
        headers={"X-API-Key": key},
    )


def stay(client: TestClient, world: World, plate: str, hours_ago: float) -> dict[str, Any]:
    """A vehicle that entered ``hours_ago`` and is now read at the exit lane."""
    entered = datetime.now(UTC) - timedelta(hours=hours_ago)
    post_event(client, world.entry_key, event_body("lane-in", plate, at=entered))
    return post_event(client, world.exit_key, event_body("lane-out", plate))


# -- commands ----------------------------------------------------------------------------------


def test_manual_open_reaches_a_listening_lane_once_and_every_step_is_audited(
    client: TestClient, world: World
) -> None:
    guard = token(client, "guard")
    assert poll(client, "lane-out", world.exit_key) == []  # the agent is listening
    issued = client.post(
        "/api/v1/cameras/lane-out/open", json={"reason": "visitor", "ttl_s": 8}, headers=guard
    )
    assert issued.status_code == 202, issued.text
    command = issued.json()
    assert command["status"] == "pending" and command["operator"] == "guard"
    offered = poll(client, "lane-out", world.exit_key)
    assert [c["command_id"] for c in offered] == [command["id"]]
    assert 7000 <= offered[0]["ttl_ms"] <= 8000 - 250  # the transit margin is taken off
    assert offered[0]["reason"] == "visitor"
    # Until acknowledged it is offered again (the edge dedupes by id).
    assert [c["command_id"] for c in poll(client, "lane-out", world.exit_key)] == [command["id"]]
    assert poll(client, "lane-in", world.entry_key) == []  # another lane's poll sees nothing
    assert ack(client, "lane-in", world.entry_key, command["id"], "pulsed").status_code == 403
    assert ack(client, "lane-out", world.exit_key, command["id"], "pulsed").json() == {
        "command_id": command["id"],
        "status": "pulsed",
    }
    assert ack(client, "lane-out", world.exit_key, command["id"], "failed").status_code == 200
    seen = client.get(f"/api/v1/commands/{command['id']}", headers=guard).json()
    assert seen["status"] == "pulsed"  # a later, contradicting ack changes nothing
    assert seen["delivered_at"] and seen["acked_at"] and seen["deliveries"] == 2
    assert poll(client, "lane-out", world.exit_key) == []
    manager = token(client, "manager")
    actions = [a["action"] for a in client.get("/api/v1/audit", headers=manager).json()]
    for step in ("gate.manual_open", "gate.command_delivered", "gate.command_pulsed"):
        assert step in actions
    unknown = ack(client, "lane-out", world.exit_key, str(uuid.uuid4()), "pulsed")
    assert unknown.status_code == 404


def test_a_command_to_a_lane_nobody_listens_on_fails_at_once(
    client: TestClient, world: World
) -> None:
    issued = client.post(
        "/api/v1/cameras/lane-in/open", json={"reason": "visitor"}, headers=token(client, "guard")
    )
    assert issued.json()["status"] == "failed"
    assert poll(client, "lane-in", world.entry_key) == []  # never queued for later


def test_an_unacknowledged_command_expires_and_is_never_offered_after(
    db: Session, world: World
) -> None:
    t0 = datetime.now(UTC)
    commands.offer(db, camera_id="lane-out", now=t0, wait_s=20)  # listening
    command = commands.issue(
        db, camera_id="lane-out", operator="guard", reason="x", now=t0, ttl_s=2
    )
    assert commands.offer(db, camera_id="lane-out", now=t0 + timedelta(seconds=3), wait_s=20) == []
    assert commands.expire(db, now=t0 + timedelta(seconds=4)) == []  # still within the slack
    assert commands.expire(db, now=t0 + timedelta(seconds=8)) == [command]
    assert command.status == "expired"
    # The lane's late word that it pulsed in time is believed; any other is not.
    late = CommandAck(outcome=CommandOutcome.FAILED, at=t0, detail="")
    commands.acknowledge(db, camera_id="lane-out", command_id=command.id, ack=late, now=t0)
    assert command.status == "expired"
    pulsed = CommandAck(outcome=CommandOutcome.PULSED, at=t0 + timedelta(seconds=1))
    commands.acknowledge(db, camera_id="lane-out", command_id=command.id, ack=pulsed, now=t0)
    assert command.status == "pulsed"


def test_a_poll_wakes_within_a_second_when_another_instance_issues_a_command(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """Two centrals on one PostgreSQL: the lane polls A, the guard uses B (NOTIFY wakes A)."""
    settings = make_settings(tmp_path, fresh_pg_url)
    db_a, db_b = Database(settings), Database(settings)
    with db_a.session() as db:
        world = build_world(db)
    app_a = create_app(settings, database=db_a, run_duties=False)
    app_b = create_app(settings, database=db_b, run_duties=False)
    with serving(app_a) as base_a, serving(app_b) as base_b:
        assert app_a.state.listener.connected.wait(10)
        got: dict[str, Any] = {}

        def lane() -> None:
            response = httpx.get(
                f"{base_a}/api/v1/lanes/lane-out/commands",
                params={"wait_s": 15},
                headers={"X-API-Key": world.exit_key},
                timeout=20,
            )
            got["at"] = time.monotonic()
            got["body"] = response.json()

        poller = threading.Thread(target=lane)
        poller.start()
        time.sleep(0.5)  # the poll is open and marked listening
        guard = httpx.post(
            f"{base_b}/api/v1/auth/token", data={"username": "guard", "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {guard.json()['access_token']}"}
        sent = time.monotonic()
        issued = httpx.post(
            f"{base_b}/api/v1/cameras/lane-out/open", json={"reason": "visitor"}, headers=headers
        )
        assert issued.json()["status"] == "pending", issued.text
        poller.join(timeout=20)
        assert got["body"]["commands"][0]["command_id"] == issued.json()["id"]
        assert got["at"] - sent < 1.0
    db_a.dispose()
    db_b.dispose()


# -- payment at exit ---------------------------------------------------------------------------


def test_unpaid_exit_holds_then_cash_closes_the_session_and_opens_its_lane(
    client: TestClient, world: World
) -> None:
    poll(client, "lane-out", world.exit_key)
    held = stay(client, world, "51F-123.45", hours_ago=2.1)
    assert held["decision"]["action"] == "hold"
    assert held["decision"]["fee"] == 3 * 20_000
    guard = token(client, "guard")
    sid = held["session_id"]
    assert client.get(f"/api/v1/sessions/{sid}/due", headers=guard).json() == {
        "session_id": sid,
        "status": "open",
        "due": 60_000,
        "held_at_lane": "lane-out",
    }
    short = client.post(
        f"/api/v1/sessions/{sid}/payments", json={"method": "cash", "amount": 10}, headers=guard
    )
    assert short.status_code == 422
    assert short.json()["detail"][0]["loc"][-1] == "amount"
    paid = client.post(f"/api/v1/sessions/{sid}/payments", json={"method": "cash"}, headers=guard)
    assert paid.status_code == 201, paid.text
    body = paid.json()
    assert body["payment"]["amount"] == 60_000 and body["payment"]["operator"] == "guard"
    assert body["session"]["status"] == "closed" and body["session"]["paid_amount"] == 60_000
    assert body["command"]["camera_id"] == "lane-out" and body["command"]["status"] == "pending"
    offered = poll(client, "lane-out", world.exit_key)
    assert [c["command_id"] for c in offered] == [body["command"]["id"]]
    again = client.post(f"/api/v1/sessions/{sid}/payments", json={"method": "cash"}, headers=guard)
    assert again.status_code == 409  # nothing is due any more
    receipt_vi = client.get(f"/api/v1/payments/{body['payment']['id']}/receipt", headers=guard)
    assert "60.000 ₫" in receipt_vi.text and "Tiền mặt" in receipt_vi.text
    assert "51F-123.45" in receipt_vi.text
    receipt_en = client.get(
        f"/api/v1/payments/{body['payment']['id']}/receipt?lang=en", headers=guard
    )
    assert "60,000 ₫" in receipt_en.text and "Cash" in receipt_en.text
    detail = client.get(f"/api/v1/reports/sessions/{sid}", headers=guard).json()
    assert [p["method"] for p in detail["payments"]] == ["cash"]
    assert [c["status"] for c in detail["commands"]] == ["delivered"]
    assert "payment.take" in [h["action"] for h in detail["history"]]


def test_payment_methods_need_their_proof_and_waiving_needs_a_manager(
    client: TestClient, world: World
) -> None:
    sid = stay(client, world, "30A-111.11", hours_ago=1.5)["session_id"]
    guard, manager = token(client, "guard"), token(client, "manager")
    url = f"/api/v1/sessions/{sid}/payments"
    card = client.post(url, json={"method": "card"}, headers=guard)
    assert card.status_code == 422 and card.json()["detail"][0]["loc"][-1] == "reference"
    assert (
        client.post(url, json={"method": "waived", "note": "vip"}, headers=guard).status_code == 403
    )
    no_reason = client.post(url, json={"method": "waived"}, headers=manager)
    assert no_reason.status_code == 422 and no_reason.json()["detail"][0]["loc"][-1] == "note"
    bogus = client.post(url, json={"method": "bitcoin"}, headers=guard)
    assert bogus.status_code == 422 and bogus.json()["detail"][0]["loc"][-1] == "method"
    waived = client.post(url, json={"method": "waived", "note": "broken barrier"}, headers=manager)
    assert waived.status_code == 201, waived.text
    assert waived.json()["payment"]["amount"] == 0 and waived.json()["payment"]["due"] == 40_000
    revenue = client.get("/api/v1/reports/revenue", headers=manager).json()
    assert revenue["totals"] == {"payments": 1, "amount": 0, "settled": 40_000, "waived": 40_000}


def test_paid_before_the_exit_leaves_without_a_stop_within_the_grace_period(
    client: TestClient, world: World
) -> None:
    entered = datetime.now(UTC) - timedelta(hours=1, minutes=30)
    entry = post_event(client, world.entry_key, event_body("lane-in", "29A-222.22", at=entered))
    guard = token(client, "guard")
    paid = client.post(
        f"/api/v1/sessions/{entry['session_id']}/payments",
        json={"method": "transfer", "reference": "VCB-778899"},
        headers=guard,
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["session"]["status"] == "open" and paid.json()["command"] is None
    out = post_event(client, world.exit_key, event_body("lane-out", "29A-222.22"))
    assert out["decision"] == {
        "action": "open",
        "reason": "exit_prepaid",
        "message": "",
        "fee": 40_000,
    }


def test_paid_before_the_exit_but_past_the_grace_period_owes_the_difference(
    db: Session, client: TestClient, world: World
) -> None:
    now = datetime.now(UTC)
    entered = now - timedelta(hours=3, minutes=5)
    entry = post_event(client, world.entry_key, event_body("lane-in", "29A-333.33", at=entered))
    taken = take_payment(
        db, session_id=entry["session_id"], method="cash", actor="guard",
        now=now - timedelta(hours=1), tz="UTC", command_ttl_s=10,
    )  # fmt: skip
    db.commit()
    assert taken.payment.amount == 60_000  # 2 h 05 min: three started hours
    out = post_event(client, world.exit_key, event_body("lane-out", "29A-333.33"))
    assert out["decision"]["action"] == "hold"
    assert out["decision"]["fee"] == 80_000 - 60_000


def test_free_and_listed_exits_still_open_at_once(client: TestClient, world: World) -> None:
    out = stay(client, world, "51G-000.01", hours_ago=0.1)  # within the free minutes
    assert out["decision"]["action"] == "open" and out["decision"]["reason"] == "exit_free"


# -- exceptions --------------------------------------------------------------------------------


def test_a_vehicle_the_camera_missed_is_typed_in_with_the_lanes_latest_picture(
    client: TestClient, world: World, db: Session
) -> None:
    import base64

    post_event(
        client,
        world.entry_key,
        event_body("lane-in", "99Z-999.99", snapshot_b64=base64.b64encode(JPEG).decode()),
    )
    picture = db.scalar(select(PlateEvent.event_id).where(PlateEvent.plate == "99Z-999.99"))
    guard = token(client, "guard")
    poll(client, "lane-in", world.entry_key)
    body = {"camera_id": "lane-in", "plate": "51k-555.66", "reason": "mud on the plate"}
    made = client.post("/api/v1/sessions", json={**body, "open_gate": True}, headers=guard)
    assert made.status_code == 201, made.text
    session = made.json()
    assert session["plate"] == "51K-555.66" and session["manual_by"] == "guard"
    assert session["snapshot_event_id"] == str(picture)
    assert [c["reason"] for c in poll(client, "lane-in", world.entry_key)] == [
        "manual entry: mud on the plate"
    ]
    twice = client.post("/api/v1/sessions", json=body, headers=guard)
    assert twice.status_code == 409
    # The exit camera reads it: it is an ordinary session from now on.
    out = post_event(client, world.exit_key, event_body("lane-out", "51K-555.66"))
    assert out["session_id"] == session["id"]


def test_lost_ticket_close_charges_the_lots_fee_and_void_frees_the_room(
    client: TestClient, world: World, db: Session
) -> None:
    db.get(Lot, "lot-a").lost_ticket_fee = 100_000  # type: ignore[union-attr]
    db.commit()
    entered = datetime.now(UTC) - timedelta(minutes=30)
    sid = post_event(client, world.entry_key, event_body("lane-in", "51H-111.11", at=entered))[
        "session_id"
    ]
    guard, manager = token(client, "guard"), token(client, "manager")
    closed = client.post(
        f"/api/v1/sessions/{sid}/close",
        json={"reason": "lost ticket, ID checked", "lost_ticket": True},
        headers=guard,
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and closed.json()["fee"] == 100_000
    due = client.get(f"/api/v1/sessions/{sid}/due", headers=guard).json()["due"]
    assert due == 100_000
    paid = client.post(
        f"/api/v1/sessions/{sid}/payments",
        json={"method": "cash", "camera_id": "lane-out"},
        headers=guard,
    )
    assert paid.status_code == 201 and paid.json()["command"]["camera_id"] == "lane-out"
    # A phantom: voided by a manager, it no longer counts against the lot.
    phantom = post_event(client, world.entry_key, event_body("lane-in", "00A-000.00"))
    assert client.post(
        f"/api/v1/sessions/{phantom['session_id']}/void", json={"reason": "a poster"},
        headers=guard,
    ).status_code == 403  # fmt: skip
    voided = client.post(
        f"/api/v1/sessions/{phantom['session_id']}/void",
        json={"reason": "read a poster on a van"},
        headers=manager,
    )
    assert voided.status_code == 200 and voided.json()["status"] == "void"
    assert occupancy(db, lot_id="lot-a") == 0
    detail = client.get(f"/api/v1/reports/sessions/{phantom['session_id']}", headers=guard)
    assert [h["action"] for h in detail.json()["history"]] == ["session.void"]


def test_capacity_counts_held_exits_but_not_void_sessions(db: Session) -> None:
    world = build_world(db, capacity=1)
    del world
    now = datetime.now(UTC)
    first = sessions.open_manual(
        db, camera_id="lane-in", plate="51A-000.01", vehicle_type="car", actor="g",
        reason="test", now=now,
    )  # fmt: skip
    db.commit()
    from app.central.sessions.ledger import Ledger

    room, _ = Ledger(db, low_confidence=0.6, tz="UTC")._has_room("lot-a")
    assert not room
    sessions.void_session(db, session_id=first.id, actor="m", reason="phantom")
    room, _ = Ledger(db, low_confidence=0.6, tz="UTC")._has_room("lot-a")
    assert room


def test_sessions_open_past_the_lots_limit_become_overstay_anomalies_once(
    db: Session, world: World
) -> None:
    now = datetime.now(UTC)
    session = sessions.open_manual(
        db, camera_id="lane-in", plate="51B-777.77", vehicle_type="car", actor="g",
        reason="test", now=now - timedelta(hours=73),
    )  # fmt: skip
    db.commit()
    assert sessions.flag_overstays(db, now=now) == 1
    assert sessions.flag_overstays(db, now=now) == 0
    found = db.scalars(select(Anomaly).where(Anomaly.kind == "overstay")).all()
    assert [a.session_id for a in found] == [session.id]


def test_void_refuses_a_session_with_payments(client: TestClient, world: World) -> None:
    sid = stay(client, world, "30B-444.44", hours_ago=1.2)["session_id"]
    guard, manager = token(client, "guard"), token(client, "manager")
    client.post(f"/api/v1/sessions/{sid}/payments", json={"method": "cash"}, headers=guard)
    refused = client.post(
        f"/api/v1/sessions/{sid}/void", json={"reason": "duplicate"}, headers=manager
    )
    assert refused.status_code == 409


def test_session_ids_beyond_64_bits_are_a_422_not_a_500(client: TestClient, world: World) -> None:
    guard = token(client, "guard")
    for path in ("/api/v1/sessions/{}/due", "/api/v1/payments/{}/receipt"):
        response = client.get(path.format(2**70), headers=guard)
        assert response.status_code == 422, (path, response.text)
    assert db_has_no_session(client, guard)


def db_has_no_session(client: TestClient, guard: dict[str, str]) -> bool:
    sessions: object = client.get("/api/v1/sessions", headers=guard).json()
    return sessions == []


def test_lot_has_rules_in_the_database(db: Session, world: World) -> None:
    lot = db.get(Lot, "lot-a")
    assert lot is not None
    assert (lot.exit_grace_minutes, lot.lost_ticket_fee, lot.max_stay_hours) == (15, 0, 72)
    assert db.scalar(select(ParkingSession).limit(1)) is None


def test_a_held_exit_closed_by_hand_is_still_let_out_at_its_lane_when_paid(
    client: TestClient, world: World
) -> None:
    poll(client, "lane-out", world.exit_key)
    sid = stay(client, world, "51M-222.33", hours_ago=1.5)["session_id"]
    guard = token(client, "guard")
    held = client.get("/api/v1/sessions", params={"held": "true"}, headers=guard).json()
    assert [s["id"] for s in held] == [sid]
    closed = client.post(
        f"/api/v1/sessions/{sid}/close", json={"reason": "ticket lost at the barrier",
                                              "lost_ticket": True}, headers=guard,
    )  # fmt: skip
    assert closed.status_code == 200, closed.text
    assert client.get(f"/api/v1/sessions/{sid}/due", headers=guard).json()["held_at_lane"] == (
        "lane-out"
    )
    paid = client.post(f"/api/v1/sessions/{sid}/payments", json={"method": "cash"}, headers=guard)
    assert paid.json()["command"]["camera_id"] == "lane-out"


def test_manual_entry_only_at_an_entry_lane_and_void_is_not_an_entry(
    client: TestClient, world: World
) -> None:
    guard, manager = token(client, "guard"), token(client, "manager")
    body = {"camera_id": "lane-out", "plate": "51N-111.22", "reason": "typed at the exit"}
    refused = client.post("/api/v1/sessions", json=body, headers=guard)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][-1] == "camera_id"
    before = client.get("/api/v1/reports/day", headers=guard).json()["totals"]["entries"]
    phantom = post_event(client, world.entry_key, event_body("lane-in", "00Z-000.01"))
    client.post(
        f"/api/v1/sessions/{phantom['session_id']}/void",
        json={"reason": "a poster on a van"},
        headers=manager,
    )
    after = client.get("/api/v1/reports/day", headers=guard).json()["totals"]["entries"]
    assert after == before


def test_a_lanes_long_poll_is_counted_but_is_not_a_response_time(
    client: TestClient, world: World
) -> None:
    """A poll waits for commands by design: in the latency histogram it would hold every
    percentile (and the ParkingSlowResponses alert) at the poll's wait."""
    from app.central.metrics import REGISTRY

    labels = {"route": "/api/v1/lanes/{camera_id}/commands", "method": "GET"}

    def sample(name: str, **extra: str) -> float:
        return REGISTRY.get_sample_value(name, {**labels, **extra}) or 0.0

    polls = sample("parking_http_requests_total", status="200")
    observed = sample("parking_http_request_duration_seconds_count")
    poll(client, "lane-out", world.exit_key, wait_s=0.3)
    assert sample("parking_http_requests_total", status="200") == polls + 1
    assert sample("parking_http_request_duration_seconds_count") == observed

"""Event ingest over HTTP: idempotency, gate decisions, and bad input, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.central.core.events import PlateEvent, Snapshot
from app.central.sessions.models import ParkingSession
from tests.conftest import World, event_body

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def post(client: TestClient, key: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/events", json=body, headers={"X-API-Key": key})


def test_same_event_twice_gives_same_answer_and_one_effect(
    client: TestClient, world: World, db: Session
) -> None:
    body = event_body("lane-in", "51F-123.45")
    first = post(client, world.entry_key, body)
    second = post(client, world.entry_key, body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers.get("x-idempotent-replay") == "true"
    assert first.json()["decision"] == {
        "action": "open",
        "reason": "entry_allowed",
        "message": "",
        "fee": 0,
    }
    assert db.scalar(select(func.count()).select_from(PlateEvent)) == 1
    assert db.scalar(select(func.count()).select_from(ParkingSession)) == 1


def test_entry_then_unpaid_exit_is_held_with_its_fee(client: TestClient, world: World) -> None:
    entered = datetime.now(UTC) - timedelta(hours=2, minutes=5)
    entry = post(client, world.entry_key, event_body("lane-in", "30A-123.45", at=entered))
    exit_ = post(client, world.exit_key, event_body("lane-out", "30A12345"))
    assert entry.json()["session_id"] == exit_.json()["session_id"]
    decision = exit_.json()["decision"]
    assert decision["action"] == "hold"  # nothing is paid yet: the barrier waits for the cashier
    assert decision["reason"] == "payment_required"
    assert decision["fee"] == 3 * 20_000  # three started hours


def test_exit_within_one_character_closes_session(client: TestClient, world: World) -> None:
    post(client, world.entry_key, event_body("lane-in", "51F-123.45"))
    answer = post(client, world.exit_key, event_body("lane-out", "51F-128.45")).json()
    assert answer["decision"]["action"] == "open"
    assert answer["anomaly"] == "plate_mismatch"
    assert answer["session_id"] is not None


def test_exit_matching_two_sessions_fuzzily_is_an_anomaly(client: TestClient, world: World) -> None:
    post(client, world.entry_key, event_body("lane-in", "51F-123.45"))
    post(client, world.entry_key, event_body("lane-in", "51F-123.47"))
    answer = post(client, world.exit_key, event_body("lane-out", "51F-123.46")).json()
    assert answer["decision"] == {
        "action": "deny",
        "reason": "no_entry_record",
        "message": "no open session matches this plate; call a guard",
        "fee": 0,
    }
    assert answer["anomaly"] == "exit_without_entry"


def test_exit_uses_reader_candidates_before_fuzzy(client: TestClient, world: World) -> None:
    post(client, world.entry_key, event_body("lane-in", "59X1-123.45"))
    body = event_body(
        "lane-out", "59X1-128.48", candidates=[{"plate": "59X1-123.45", "confidence": 0.4}]
    )
    answer = post(client, world.exit_key, body).json()
    assert answer["decision"]["action"] == "open"
    assert answer["session_id"] is not None


def test_exit_without_entry_is_denied_and_recorded(client: TestClient, world: World) -> None:
    answer = post(client, world.exit_key, event_body("lane-out", "99Z-999.99")).json()
    assert answer["decision"]["action"] == "deny"
    assert answer["anomaly"] == "exit_without_entry"


def test_full_lot_denies_entry_but_admits_subscriber(
    client: TestClient, db: Session, world: World
) -> None:
    from app.central.lists.service import add_subscription
    from app.central.lots.service import update_lot

    update_lot(db, lot_id=world.lot_id, name=None, capacity=1)
    now = datetime.now(UTC)
    add_subscription(
        db,
        plate="77C-777.77",
        lot_id=world.lot_id,
        holder="Ms. Lan",
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=29),
    )
    db.commit()
    assert (
        post(client, world.entry_key, event_body("lane-in", "11A-111.11")).json()["decision"][
            "action"
        ]
        == "open"
    )
    full = post(client, world.entry_key, event_body("lane-in", "22B-222.22")).json()
    assert full["decision"]["action"] == "deny"
    assert full["decision"]["reason"] == "lot_full"
    member = post(
        client, world.entry_key, event_body("lane-in", "77C-777.77", at=now - timedelta(hours=6))
    ).json()
    assert member["decision"]["reason"] == "subscriber"
    out = post(client, world.exit_key, event_body("lane-out", "77C-777.77")).json()
    assert out["decision"]["fee"] == 0


def test_deny_listed_vehicle_is_refused(client: TestClient, db: Session, world: World) -> None:
    from app.central.lists.service import add_list_entry

    add_list_entry(
        db, plate="29A-666.66", kind="deny", lot_id=None, reason="stolen", expires_at=None
    )
    db.commit()
    answer = post(client, world.entry_key, event_body("lane-in", "29A-666.66")).json()
    assert answer["decision"]["action"] == "deny"
    assert answer["decision"]["reason"] == "deny_listed"
    assert answer["session_id"] is None


def test_snapshot_is_stored_and_served(client: TestClient, world: World, db: Session) -> None:
    from tests.conftest import token

    body = event_body("lane-in", "51G-555.55", snapshot_b64=base64.b64encode(JPEG).decode())
    assert post(client, world.entry_key, body).status_code == 200
    assert db.scalar(select(func.count()).select_from(Snapshot)) == 1
    got = client.get(f"/api/v1/events/{body['event_id']}/snapshot", headers=token(client, "guard"))
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/jpeg"
    assert got.content == JPEG


def test_unknown_camera_key_is_401(client: TestClient, world: World) -> None:
    answer = post(client, "pk_not-a-key", event_body("lane-in", "51F-123.45"))
    assert answer.status_code == 401
    missing = client.post("/api/v1/events", json=event_body("lane-in", "51F-123.45"))
    assert missing.status_code == 401


def _field_of_422(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    return [str(part) for error in response.json()["detail"] for part in error["loc"]]


def test_bad_plate_charset_is_422_naming_plate(client: TestClient, world: World) -> None:
    for bad in ["<script>alert(1)</script>", "A", "51F_123", "ABCDEFGHIJKLMNOPQRS"]:
        assert "plate" in _field_of_422(post(client, world.entry_key, event_body("lane-in", bad)))


def test_future_timestamp_is_422_naming_captured_at(client: TestClient, world: World) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    response = post(client, world.entry_key, event_body("lane-in", "51F-123.45", at=future))
    assert "captured_at" in _field_of_422(response)


def test_naive_timestamp_is_422(client: TestClient, world: World) -> None:
    body = event_body("lane-in", "51F-123.45")
    body["captured_at"] = datetime.now().replace(tzinfo=None).isoformat()
    assert "captured_at" in _field_of_422(post(client, world.entry_key, body))


def test_non_jpeg_snapshot_is_422(client: TestClient, world: World, db: Session) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
    body = event_body("lane-in", "51F-123.45", snapshot_b64=png)
    assert "snapshot_b64" in _field_of_422(post(client, world.entry_key, body))
    assert db.scalar(select(func.count()).select_from(PlateEvent)) == 0


def test_oversize_snapshot_is_422(client: TestClient, world: World) -> None:
    big = base64.b64encode(b"\xff\xd8\xff" + b"\x00" * (600 * 1024) + b"\xff\xd9").decode()
    body = event_body("lane-in", "51F-123.45", snapshot_b64=big)
    assert "snapshot_b64" in _field_of_422(post(client, world.entry_key, body))


def test_body_over_limit_is_413(client: TestClient, world: World) -> None:
    body = event_body("lane-in", "51F-123.45", snapshot_b64="A" * 2_000_000)
    response = post(client, world.entry_key, body)
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_event_for_another_camera_is_refused(client: TestClient, world: World, db: Session) -> None:
    response = post(client, world.entry_key, event_body("lane-out", "51F-123.45"))
    assert response.status_code == 409
    assert db.scalar(select(func.count()).select_from(PlateEvent)) == 0


def test_batch_is_processed_in_order_and_idempotent(
    client: TestClient, world: World, db: Session
) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    events = [
        event_body("lane-in", f"51F-{i:03d}.00", at=t0 + timedelta(seconds=i)) for i in range(20)
    ]
    events.append(events[3])  # a duplicate inside the batch
    first = client.post(
        "/api/v1/events/batch", json={"events": events}, headers={"X-API-Key": world.entry_key}
    )
    assert first.status_code == 200, first.text
    acks = first.json()["acks"]
    assert [a["event_id"] for a in acks] == [e["event_id"] for e in events]
    assert acks[20] == acks[3]
    again = client.post(
        "/api/v1/events/batch", json={"events": events[:5]}, headers={"X-API-Key": world.entry_key}
    )
    assert again.json()["acks"] == acks[:5]
    assert db.scalar(select(func.count()).select_from(PlateEvent)) == 20


def test_reusing_another_cameras_event_id_is_a_conflict(client: TestClient, world: World) -> None:
    body = event_body("lane-in", "51F-123.45")
    post(client, world.entry_key, body)
    clash = dict(body, camera_id="lane-out", event_id=body["event_id"])
    response = post(client, world.exit_key, clash)
    assert response.status_code == 409
    assert str(uuid.UUID(body["event_id"])) == body["event_id"]

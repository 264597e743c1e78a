"""Erasing one plate's history (issue 19): every look-alike spelling of the plate is
anonymised or deleted, nothing of other plates is touched, amounts and times stay, open
sessions refuse (409), only an admin may, and the erasure is audited without the plate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.audit.models import AuditEntry
from app.central.core.events import PlateEvent, Snapshot
from app.central.edgesync.models import OfflineGateDecision
from app.central.lists.models import ListEntry, Subscription
from app.central.payments.models import Payment
from app.central.privacy.erasure import MAX_SPELLINGS, scrub_text, spelling_count, spellings
from app.central.sessions.models import Anomaly, ParkingSession
from app.contract import plate_match_key
from tests.conftest import World, event_body, token

JPEG = "/9j/4AAQ/9k="
PLATE = "51F-123.45"
# The same plate as a reader may see it (look-alikes: S/5, I/1, Z/2...), and other plates.
VARIANTS = ["51F12345", "SIF-I23.4S", "5IF-1Z3.45"]
OTHERS = ["51F-123.46", "30A-999.99"]


def post(client: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/events", json=body, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stay(client: TestClient, world: World, plate: str, days_ago: int) -> int:
    """A closed stay of 10 minutes (free), with snapshots, ``days_ago`` days ago."""
    start = datetime.now(UTC) - timedelta(days=days_ago)
    entry = post(client, world.entry_key, event_body("lane-in", plate, at=start, snapshot_b64=JPEG))
    exit_ = post(
        client,
        world.exit_key,
        event_body("lane-out", plate, at=start + timedelta(minutes=10), snapshot_b64=JPEG),
    )
    assert exit_["session_id"] == entry["session_id"]
    session_id: int = entry["session_id"]
    return session_id


def erase(client: TestClient, role: str, plate: str, reason: str = "data subject request"):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/plates/erase",
        json={"plate": plate, "reason": reason},
        headers=token(client, role),
    )


def test_erasure_anonymises_every_look_alike_and_nothing_else(
    client: TestClient, world: World, db: Session
) -> None:
    mine = [stay(client, world, plate, days_ago=5 + n) for n, plate in enumerate(VARIANTS)]
    theirs = [stay(client, world, plate, days_ago=2 + n) for n, plate in enumerate(OTHERS)]
    # An exit without an entry (an anomaly) and an offline decision, for a variant.
    lone = post(client, world.exit_key, event_body("lane-out", "SIF12345", snapshot_b64=JPEG))
    assert lone["anomaly"] == "exit_without_entry"
    db.add(OfflineGateDecision(event_id=UUID(lone["event_id"]), camera_id="lane-out",
                               lot_id="lot-a", plate="SIF12345", decided_at=datetime.now(UTC),
                               action="open", reason="allow", basis="lists"))  # fmt: skip
    db.add(Payment(session_id=mine[0], lot_id="lot-a", due=20_000, amount=20_000,
                   method="cash", operator="manager"))  # fmt: skip
    db.commit()
    manager = token(client, "manager")
    for plate in ("5IF-I23.45", OTHERS[0]):
        client.post("/api/v1/lists", json={"plate": plate, "kind": "deny"}, headers=manager)
        client.post(
            "/api/v1/subscriptions",
            json={"plate": plate, "lot_id": "lot-a",
                  "valid_from": datetime.now(UTC).isoformat(),
                  "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat()},
            headers=manager,
        )  # fmt: skip
    before = {s.id: (s.entered_at, s.exited_at, s.fee) for s in db.scalars(select(ParkingSession))}

    response = erase(client, "admin", PLATE, reason=f"owner asked (was {PLATE})")
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["sessions"] == 3
    assert done["events"] == 7  # 3 entries, 3 exits, the lone exit
    assert done["snapshots"] == 7
    assert done["list_entries"] == 1 and done["subscriptions"] == 1
    assert done["offline_decisions"] == 1 and done["anomalies"] >= 1

    db.expire_all()
    for session in db.scalars(select(ParkingSession)):
        if session.id in mine:
            assert (session.plate_display, session.plate_normalized, session.plate_key) == (
                "ERASED", "~ERASED", "~ERASED",
            )  # fmt: skip
            assert session.exit_plate == "ERASED"
            # Accounting stays: times and fee.
            assert (session.entered_at, session.exited_at, session.fee) == before[session.id]
        else:
            assert session.id in theirs
            assert plate_match_key(session.plate_normalized) != plate_match_key(PLATE)
    assert db.scalar(select(Payment.amount).where(Payment.session_id == mine[0])) == 20_000
    key = plate_match_key(PLATE)
    events = db.scalars(select(PlateEvent)).all()
    snapshots = set(db.scalars(select(Snapshot.event_id)))
    for event in events:
        if event.plate == "ERASED":
            assert event.plate_normalized == "~ERASED" and event.candidates == []
            assert event.event_id not in snapshots and not event.has_snapshot
        else:
            assert plate_match_key(event.plate) != key
            assert event.event_id in snapshots  # other plates keep their pictures
    assert sum(e.plate != "ERASED" for e in events) == 2 * len(OTHERS)
    for anomaly in db.scalars(select(Anomaly)):
        assert key not in plate_match_key(anomaly.plate + anomaly.detail)
    assert db.scalar(select(OfflineGateDecision.plate)) == "ERASED"
    assert [plate_match_key(e.plate_normalized) for e in db.scalars(select(ListEntry))] == [
        plate_match_key(OTHERS[0])
    ]
    assert db.scalars(select(Subscription.plate_normalized)).all() == ["51F12346"]
    # The audit log: the erasure is there, who, why and what, and no spelling of the plate
    # is left in clear anywhere in it.
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "plate.erase")).one()
    assert entry.actor == "admin" and entry.target_id.startswith("hmac-sha256:")
    assert entry.reason == "owner asked (was ERASED)"
    assert entry.details["sessions"] == 3
    for row in db.scalars(select(AuditEntry)):
        text = json.dumps([row.target_id, row.reason, row.details])
        for word in text.replace('"', " ").split():
            assert plate_match_key(word) != key, row.action
    # Searching finds nothing of it any more, by any spelling.
    guard = token(client, "guard")
    for plate in [PLATE, *VARIANTS, "ERASED"]:
        found = client.get("/api/v1/sessions", params={"plate": plate}, headers=guard).json()
        assert found == [], plate
    # Erasing again finds nothing and changes nothing, and hashes to the same value.
    again = erase(client, "admin", "5IF12345").json()
    assert again["sessions"] == again["events"] == 0
    assert again["plate_hash"] == done["plate_hash"]


def test_an_open_session_refuses_erasure_and_nothing_changes(
    client: TestClient, world: World, db: Session
) -> None:
    inside = post(client, world.entry_key, event_body("lane-in", "SIF-I23.4S", snapshot_b64=JPEG))
    response = erase(client, "admin", PLATE)
    assert response.status_code == 409, response.text
    assert "open session" in response.json()["detail"] or "open session" in response.text
    session = db.get(ParkingSession, inside["session_id"])
    assert session is not None and session.plate_display == "SIF-I23.4S"
    assert db.scalar(select(Snapshot.event_id)) is not None
    assert not db.scalars(select(AuditEntry).where(AuditEntry.action == "plate.erase")).all()


def test_only_an_admin_erases(client: TestClient, world: World) -> None:
    body = {"plate": PLATE, "reason": "data subject request"}
    assert client.post("/api/v1/plates/erase", json=body).status_code == 401
    for role in ("guard", "manager"):
        assert erase(client, role, PLATE).status_code == 403
    assert erase(client, "admin", PLATE).status_code == 200
    # A reason is required; a plate must be a plate.
    admin = token(client, "admin")
    for bad in (
        {"plate": PLATE},
        {"plate": PLATE, "reason": ""},
        {"plate": "-", "reason": "x" * 5},
    ):
        response = client.post("/api/v1/plates/erase", json=bad, headers=admin)
        assert response.status_code == 422, bad


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=8))
def test_spellings_are_exactly_the_plates_with_the_same_match_key(plate: str) -> None:
    key = plate_match_key(plate)
    if spelling_count(key) > 5000:
        return
    found = list(spellings(key))
    assert len(found) == len(set(found)) == spelling_count(key)
    assert plate in found
    assert all(plate_match_key(p) == key for p in found)


def test_scrub_replaces_the_plate_in_any_spelling_and_keeps_the_rest() -> None:
    key = plate_match_key(PLATE)
    assert scrub_text("entry 51F-123.45 / exit SIF I23.4S", key) == "entry ERASED / exit ERASED"
    assert (
        scrub_text("entry 51F-123.46 / exit 51F-123.45.", key) == "entry 51F-123.46 / exit ERASED."
    )


def test_a_plate_with_too_many_spellings_for_the_index_is_found_by_a_scan(
    client: TestClient, world: World, db: Session
) -> None:
    # Eight look-alikes of 0 (O, D, Q, 0 each): 65,536 spellings, past MAX_SPELLINGS.
    assert spelling_count(plate_match_key("00000000")) > MAX_SPELLINGS
    mine = [
        stay(client, world, plate, days_ago=3 + n)
        for n, plate in enumerate(["OOD-000.00", "00Q00000"])
    ]
    other = stay(client, world, "00D-000.01", days_ago=2)
    done = erase(client, "admin", "00000000").json()
    assert done["sessions"] == 2 and done["events"] == 4 and done["snapshots"] == 4
    db.expire_all()
    for session_id in mine:
        session = db.get(ParkingSession, session_id)
        assert session is not None and session.plate_display == "ERASED"
    kept = db.get(ParkingSession, other)
    assert kept is not None and kept.plate_display == "00D-000.01"
    assert sorted(db.scalars(select(PlateEvent.plate))) == ["00D-000.01"] * 2 + ["ERASED"] * 4

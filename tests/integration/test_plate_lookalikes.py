"""Look-alike characters (O/0, I/1, B/8, ...) match at the exit, on the lists and in search;
the plates stored and shown stay as read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.lists.models import ListEntry
from app.central.lists.service import add_list_entry, add_subscription
from app.central.sessions.ledger import Ledger
from app.central.sessions.models import ParkingSession
from app.central.sessions.service import list_sessions
from app.contract import plate_match_key
from tests.conftest import World, event_body


def post(client: TestClient, key: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/events", json=body, headers={"X-API-Key": key})


def test_exit_read_with_a_look_alike_matches_exactly_and_nothing_is_rewritten(
    client: TestClient, world: World, db: Session
) -> None:
    entry = post(client, world.entry_key, event_body("lane-in", "0AB-1234")).json()
    session = db.get(ParkingSession, entry["session_id"])
    assert session is not None
    assert (session.plate_normalized, session.plate_display) == ("0AB1234", "0AB-1234")
    assert session.plate_key == plate_match_key("0AB1234")

    out = post(client, world.exit_key, event_body("lane-out", "OAB-1234")).json()
    assert out["session_id"] == entry["session_id"]
    assert out["anomaly"] is None, "a look-alike is the same plate, not a mismatch"
    db.refresh(session)
    assert session.status in {"open", "closed"}
    assert (session.plate_normalized, session.plate_display) == ("0AB1234", "0AB-1234")
    assert session.exit_plate == "OAB-1234"


def test_within_one_character_compares_match_keys(client: TestClient, world: World) -> None:
    entry = post(client, world.entry_key, event_body("lane-in", "0AB-1234")).json()
    # O for 0 and 8 for B are no edits; 5 for 4 is the one character off
    out = post(client, world.exit_key, event_body("lane-out", "OA8-1235")).json()
    assert out["session_id"] == entry["session_id"]
    assert out["anomaly"] == "plate_mismatch"


def test_a_second_entry_with_a_look_alike_is_already_inside(
    client: TestClient, world: World, db: Session
) -> None:
    first = post(client, world.entry_key, event_body("lane-in", "51F-123.45")).json()
    again = post(client, world.entry_key, event_body("lane-in", "5IF-I23.45")).json()
    assert again["decision"]["reason"] == "already_inside"
    assert again["session_id"] == first["session_id"]
    assert len(db.scalars(select(ParkingSession)).all()) == 1


def test_allow_list_and_pass_match_look_alikes(
    client: TestClient, world: World, db: Session
) -> None:
    add_list_entry(db, plate="OAB-1234", kind="allow", lot_id=None, reason="", expires_at=None)
    now = datetime.now(UTC)
    add_subscription(
        db, plate="SZ-G0B", lot_id=world.lot_id, holder="", valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=1),
    )  # fmt: skip
    db.commit()
    stored = db.scalars(select(ListEntry)).one()
    assert (stored.plate_normalized, stored.plate_display) == ("OAB1234", "OAB-1234")

    answer = post(client, world.entry_key, event_body("lane-in", "0AB1234")).json()
    assert answer["decision"]["reason"] == "allow_listed"
    # the ingest path's own lookup (the ledger's), keyed by the match key
    ledger = Ledger(db, low_confidence=0.0, tz="UTC")
    assert ledger.standing("0AB1234").listed(lot_id=world.lot_id, at=now) == "allow"
    assert ledger.standing("52608").subscriber(lot_id=world.lot_id, at=now)
    assert not ledger.standing("52609").subscriber(lot_id=world.lot_id, at=now)


def test_session_search_matches_look_alikes_exactly_and_fuzzily(
    client: TestClient, world: World, db: Session
) -> None:
    post(client, world.entry_key, event_body("lane-in", "0AB-1234"))
    assert [s.plate_display for s in list_sessions(db, plate="OAB1234")] == ["0AB-1234"]
    assert [s.plate_display for s in list_sessions(db, plate="OA81239", fuzzy=True)] == ["0AB-1234"]
    assert list_sessions(db, plate="OA81299", fuzzy=True) == []


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(["OAB1234", "0AB1234", "QA81234", "DAB1234", "0A8-1234"]))
def test_any_look_alike_spelling_finds_the_stored_plate(
    db: Session, world: World, read: str
) -> None:
    add_list_entry(db, plate="OAB-1234", kind="deny", lot_id=None, reason="", expires_at=None)
    db.flush()
    try:
        found = Ledger(db, low_confidence=0.0, tz="UTC").standing(read)
        assert found.listed(lot_id=world.lot_id, at=datetime.now(UTC)) == "deny"
    finally:
        db.rollback()


LOOKALIKE_SPELLINGS = {"0": "ODQ0", "1": "I1", "8": "B8", "5": "S5", "2": "Z2", "6": "G6"}


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_look_alike_spelling_of_an_entry_matches_at_the_exit(
    client: TestClient, world: World, data: st.DataObject
) -> None:
    digits = data.draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    letters = data.draw(st.text(alphabet="ACEFHKMNPRTUVWXY", min_size=2, max_size=2))
    plate = f"{letters}-{digits}"

    def respell(text: str) -> str:
        return "".join(
            data.draw(st.sampled_from(LOOKALIKE_SPELLINGS[c])) if c in LOOKALIKE_SPELLINGS else c
            for c in text
        )

    entry = post(client, world.entry_key, event_body("lane-in", respell(plate))).json()
    assert entry["decision"]["action"] == "open"
    out = post(client, world.exit_key, event_body("lane-out", respell(plate))).json()
    assert out["session_id"] == entry["session_id"]
    assert out["anomaly"] is None

"""Many events in one transaction (group commit and /batch) decide exactly as one by one would,
on SQLite and PostgreSQL; each event's own error stays its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.central.core.events import PlateEvent as PlateEventRow
from app.central.core.identity import CameraIdentity
from app.central.db import Database
from app.central.deps import app_state
from app.central.errors import Conflict
from app.central.events.fastpath import FastIngest
from app.central.events.service import Ingested, IngestPolicy, ingest_many
from app.central.live.service import PENDING_KEY
from app.central.main import create_app
from app.central.sessions.models import Anomaly, ParkingSession
from app.contract import PlateEvent
from support.server import serving
from tests.conftest import World, build_world, event_body, make_settings, token

POLICY = IngestPolicy(low_confidence=0.6, timezone="UTC")
ENTRY = CameraIdentity("lane-in", "lot-a", "entry")
EXIT = CameraIdentity("lane-out", "lot-a", "exit")


def event(camera: CameraIdentity, plate: str, at: datetime, **extra: Any) -> PlateEvent:
    return PlateEvent.model_validate(event_body(camera.id, plate, at=at, **extra))


def acks(results: list[Ingested | Exception]) -> list[dict[str, Any]]:
    assert all(isinstance(r, Ingested) for r in results), results
    return [r.ack for r in results if isinstance(r, Ingested)]


def test_entry_exit_entry_of_one_plate_in_one_transaction(db: Session, world: World) -> None:
    t0 = (datetime.now(UTC) - timedelta(days=1)).replace(hour=8, minute=0)  # no midnight
    results = ingest_many(
        db,
        [
            (ENTRY, event(ENTRY, "51F-123.45", t0)),
            (ENTRY, event(ENTRY, "30A-999.99", t0)),
            (EXIT, event(EXIT, "51F-123.45", t0 + timedelta(minutes=10))),  # free minutes
            (ENTRY, event(ENTRY, "51F-123.45", t0 + timedelta(hours=2, minutes=30))),
            (EXIT, event(EXIT, "30A-999.98", t0 + timedelta(hours=1))),  # one character off
        ],
        policy=POLICY,
    )
    first, other, out, again, fuzzy = acks(results)
    assert first["decision"]["reason"] == "entry_allowed"
    assert out["session_id"] == first["session_id"]
    assert out["decision"] == {"action": "open", "reason": "exit_free", "message": "", "fee": 0}
    assert again["decision"]["reason"] == "entry_allowed"
    assert again["session_id"] not in (None, first["session_id"])
    assert fuzzy["session_id"] == other["session_id"]
    assert fuzzy["anomaly"] == "plate_mismatch"
    # One started hour is due and unpaid: the barrier holds, the vehicle is still inside.
    assert fuzzy["decision"] == {
        "action": "hold",
        "reason": "payment_required",
        "message": "20000 due; pay the cashier",
        "fee": 20_000,
    }
    rows = {s.id: s for s in db.scalars(select(ParkingSession))}
    assert rows[first["session_id"]].status == "closed"
    assert rows[first["session_id"]].fee == 0
    assert rows[again["session_id"]].status == "open"
    assert rows[other["session_id"]].status == "open"
    assert rows[other["session_id"]].exit_held_camera_id == "lane-out"
    assert rows[other["session_id"]].fee == 20_000
    assert db.scalar(select(func.count()).select_from(PlateEventRow)) == 5


def test_second_entry_in_one_transaction_is_the_same_arrival_or_a_duplicate(
    db: Session, world: World
) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    results = ingest_many(
        db,
        [
            (ENTRY, event(ENTRY, "29A-111.11", t0)),
            (ENTRY, event(ENTRY, "29A-111.11", t0 + timedelta(seconds=30))),
            (ENTRY, event(ENTRY, "29A-111.11", t0 + timedelta(minutes=30))),
        ],
        policy=POLICY,
    )
    first, same, later = acks(results)
    assert same["session_id"] == later["session_id"] == first["session_id"] is not None
    assert same["decision"]["reason"] == later["decision"]["reason"] == "already_inside"
    assert same["anomaly"] is None
    assert later["anomaly"] == "duplicate_entry"
    anomaly = db.scalars(select(Anomaly).where(Anomaly.kind == "duplicate_entry")).one()
    assert anomaly.session_id == first["session_id"]  # known only once the batch was written


def test_room_counts_the_sessions_opened_earlier_in_the_transaction(
    db: Session, world: World
) -> None:
    from app.central.lots.service import update_lot

    update_lot(db, lot_id=world.lot_id, name=None, capacity=2)
    db.commit()
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    items = [(ENTRY, event(ENTRY, f"60B-{i:03d}.00", t0)) for i in range(3)]
    reasons = [a["decision"]["reason"] for a in acks(ingest_many(db, items, policy=POLICY))]
    assert reasons == ["entry_allowed", "entry_allowed", "lot_full"]


def test_one_events_conflict_does_not_fail_the_others(db: Session, world: World) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    taken = event(ENTRY, "51F-222.22", t0)
    ingest_many(db, [(ENTRY, taken)], policy=POLICY)
    stolen = PlateEvent.model_validate(
        {**taken.model_dump(mode="json"), "camera_id": EXIT.id, "plate": "51F-333.33"}
    )
    fine = event(ENTRY, "51F-444.44", t0)
    wrong_camera = event(EXIT, "51F-555.55", t0)
    retry = taken
    results = ingest_many(
        db,
        [(EXIT, stolen), (ENTRY, fine), (ENTRY, wrong_camera), (ENTRY, retry), (ENTRY, fine)],
        policy=POLICY,
    )
    assert isinstance(results[0], Conflict)
    assert isinstance(results[2], Conflict)
    assert isinstance(results[1], Ingested) and not results[1].replay
    assert isinstance(results[3], Ingested) and results[3].replay
    assert isinstance(results[4], Ingested) and results[4].replay
    assert results[4].ack == results[1].ack
    stored = set(db.scalars(select(PlateEventRow.event_id)))
    assert stored == {taken.event_id, fine.event_id}


def test_live_messages_keep_the_order_of_the_events(db: Session, world: World) -> None:
    db.info.pop(PENDING_KEY, None)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    ingest_many(
        db,
        [
            (ENTRY, event(ENTRY, "11A-111.11", t0, confidence=0.3)),
            (ENTRY, event(ENTRY, "22B-222.22", t0)),
        ],
        policy=POLICY,
    )
    kinds = [(m["type"], m["data"].get("plate")) for m in db.info.pop(PENDING_KEY, [])]
    assert kinds == [
        ("anomaly", "11A-111.11"),
        ("session_opened", "11A-111.11"),
        ("plate_event", "11A-111.11"),
        ("session_opened", "22B-222.22"),
        ("plate_event", "22B-222.22"),
    ]


def test_http_single_events_share_the_group_commit(client: TestClient, world: World) -> None:
    body = event_body("lane-in", "51F-123.45")
    first = client.post("/api/v1/events", json=body, headers={"X-API-Key": world.entry_key})
    again = client.post("/api/v1/events", json=body, headers={"X-API-Key": world.entry_key})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["x-idempotent-replay"] == "true"
    combiner = client.app.state.ingest  # type: ignore[attr-defined]
    assert combiner.events >= 2
    bad = dict(body, event_id=str(uuid.uuid4()), camera_id="lane-out")
    refused = client.post("/api/v1/events", json=bad, headers={"X-API-Key": world.entry_key})
    assert refused.status_code == 409


def test_fast_path_answers_like_the_route(fresh_url: str, tmp_path: Path) -> None:
    """A real server (no dependency overrides): the first request of a key goes through the
    route and caches the key, the next ones through events/fastpath.py; answers, errors and
    metrics are the same either way."""
    settings = make_settings(tmp_path, fresh_url)
    database = Database(settings)
    with database.session() as db:
        world = build_world(db)
    app = create_app(settings, database=database, run_duties=False)
    key = {"X-API-Key": world.entry_key}
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        before = _ok_events(http.get("/metrics").text)
        first = http.post("/api/v1/events", json=event_body("lane-in", "51F-100.01"), headers=key)
        assert first.status_code == 200, first.text
        body = event_body("lane-in", "51F-100.02")
        fast = http.post("/api/v1/events", json=body, headers=key)
        assert fast.status_code == 200, fast.text
        assert fast.json()["decision"]["reason"] == "entry_allowed"
        assert "x-idempotent-replay" not in fast.headers
        again = http.post("/api/v1/events", json=body, headers=key)
        assert again.json() == fast.json()
        assert again.headers["x-idempotent-replay"] == "true"
        warm = http.post(  # the exit key is not cached yet: the route answers, and caches it
            "/api/v1/events",
            json=event_body("lane-out", "51F-100.01"),
            headers={"X-API-Key": world.exit_key},
        )
        assert warm.status_code == 200, warm.text
        reused = event_body("lane-out", "51F-100.04", event_id=body["event_id"])
        conflict = http.post("/api/v1/events", json=reused, headers={"X-API-Key": world.exit_key})
        assert conflict.status_code == 409
        assert conflict.json()["detail"][0]["loc"] == ["body", "event_id"]
        bad = http.post("/api/v1/events", json=event_body("lane-in", "<b>"), headers=key)
        assert bad.status_code == 422
        assert "plate" in [str(p) for e in bad.json()["detail"] for p in e["loc"]]
        after = _ok_events(http.get("/metrics").text)
    assert app.state.ingest.events >= 4
    assert after - before == 4  # the fast path's answers are counted under the route
    database.dispose()


def _ok_events(metrics: str) -> float:
    line = 'parking_http_requests_total{method="POST",route="/api/v1/events",status="200"} '
    rows = [row for row in metrics.splitlines() if row.startswith(line)]
    return float(rows[0].rsplit(" ", 1)[1]) if rows else 0.0


def _spy_fast_path(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records what ``FastIngest._handle`` answered for each request it saw (True: handled)."""
    seen: list[bool] = []
    handle = FastIngest._handle

    async def spy(self: FastIngest, scope: Any, body: bytes, send: Any) -> bool:
        handled = await handle(self, scope, body, send)
        seen.append(handled)
        return handled

    monkeypatch.setattr(FastIngest, "_handle", spy)
    return seen


def test_test_clients_take_the_fast_path(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TestClient suites override only ``db_session``; their events go the production way
    (events/fastpath.py) in the test's own session, not through the route."""
    seen = _spy_fast_path(monkeypatch)
    key = {"X-API-Key": world.entry_key}
    first = client.post("/api/v1/events", json=event_body("lane-in", "51F-700.01"), headers=key)
    assert first.status_code == 200, first.text  # the route: caches the key
    body = event_body("lane-in", "51F-700.02")
    fast = client.post("/api/v1/events", json=body, headers=key)
    again = client.post("/api/v1/events", json=body, headers=key)
    assert fast.status_code == again.status_code == 200
    assert again.json() == fast.json() and again.headers["x-idempotent-replay"] == "true"
    assert seen[-2:] == [True, True]
    sessions = client.get("/api/v1/sessions", headers=token(client, "guard")).json()
    assert "51F70002" in [s["plate"].replace("-", "").replace(".", "") for s in sessions]


def test_any_other_dependency_override_goes_to_the_route(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy_fast_path(monkeypatch)
    app: FastAPI = client.app  # type: ignore[assignment]
    app.dependency_overrides[app_state] = lambda: app.state.parking
    key = {"X-API-Key": world.entry_key}
    for plate in ("51F-710.01", "51F-710.02"):
        answer = client.post("/api/v1/events", json=event_body("lane-in", plate), headers=key)
        assert answer.status_code == 200, answer.text
    assert seen == []


def test_another_cameras_event_is_refused_at_every_door(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The camera-id rule (``owns``): the single route, the fast path (which hands the event to
    the route) and the batch route all answer 409 naming camera_id, and store nothing."""
    seen = _spy_fast_path(monkeypatch)
    key = {"X-API-Key": world.entry_key}
    warm = client.post("/api/v1/events", json=event_body("lane-in", "51F-720.01"), headers=key)
    assert warm.status_code == 200  # the key is cached: the next event meets the fast path
    stolen = [event_body("lane-out", "51F-720.02"), event_body("lane-out", "51F-720.03")]
    single = client.post("/api/v1/events", json=stolen[0], headers=key)
    assert seen[-1] is False  # the fast path refused to handle it; the route answered
    batch = client.post(
        "/api/v1/events/batch",
        json={"events": [event_body("lane-in", "51F-720.04"), stolen[1]]},
        headers=key,
    )
    for refused in (single, batch):
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "camera_id"]
    events = client.get("/api/v1/events", headers=token(client, "guard")).json()
    assert {e["plate"] for e in events} == {"51F-720.01"}  # the batch wrote nothing either

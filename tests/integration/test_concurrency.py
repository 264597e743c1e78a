"""Idempotency under concurrent duplicates, with real commits through a real server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

from app.central.core.events import PlateEvent
from app.central.db import Database
from app.central.main import create_app
from app.central.sessions.models import ParkingSession
from support.server import serving
from tests.conftest import build_world, event_body, make_settings


def test_concurrent_duplicates_have_one_effect_and_one_answer(
    fresh_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fresh_url)
    database = Database(settings)
    with database.session() as db:
        world = build_world(db)
    app = create_app(settings, database=database, run_duties=False)
    bodies = [event_body("lane-in", f"51F-{i:03d}.{i % 100:02d}") for i in range(10)]
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:

        def send(body: dict[str, object]) -> httpx.Response:
            return http.post("/api/v1/events", json=body, headers={"X-API-Key": world.entry_key})

        # Every event sent 8 times at once, all 80 requests in flight together.
        with ThreadPoolExecutor(max_workers=32) as pool:
            responses = list(pool.map(send, [b for b in bodies for _ in range(8)]))
    assert {r.status_code for r in responses} == {200}
    for i in range(len(bodies)):
        answers = {r.text for r in responses[i * 8 : (i + 1) * 8]}
        assert len(answers) == 1, f"event {i} got {len(answers)} different answers"
        replays = [r.headers.get("x-idempotent-replay") for r in responses[i * 8 : (i + 1) * 8]]
        assert replays.count(None) == 1, replays  # exactly one request had the effect
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(PlateEvent)) == 10
        assert db.scalar(select(func.count()).select_from(ParkingSession)) == 10
    database.dispose()


def test_concurrent_entries_of_one_plate_open_one_session(fresh_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fresh_url)
    database = Database(settings)
    with database.session() as db:
        world = build_world(db)
    app = create_app(settings, database=database, run_duties=False)
    # Different event ids, same plate: two lanes (or a double read) racing.
    bodies = [event_body("lane-in", "51F-777.77") for _ in range(12)]
    with (
        serving(app) as base,
        httpx.Client(base_url=base, timeout=30) as http,
        ThreadPoolExecutor(max_workers=12) as pool,
    ):
        responses = list(
            pool.map(
                lambda b: http.post(
                    "/api/v1/events", json=b, headers={"X-API-Key": world.entry_key}
                ),
                bodies,
            )
        )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["session_id"] for r in responses}) == 1
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(ParkingSession)) == 1
        assert db.scalar(select(func.count()).select_from(PlateEvent)) == 12
    database.dispose()

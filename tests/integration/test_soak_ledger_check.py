"""The soak's exit-decision check (``support/lab_soak.py::LEDGER_CHECK``), run here as the soak
runs it on a central host, on a database of the test's own: it passes the decisions central
made, and names each stored decision that contradicts the ledger's rules (a barrier opened
with money due, a hold for the wrong amount, an open that did not close its session)."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.central.core.events import PlateEvent
from app.central.db import Database
from app.central.main import create_app
from support.lab_soak import LEDGER_CHECK
from tests.conftest import World, build_world, event_body, make_settings


@pytest.fixture
def world_db(fresh_url: str, tmp_path: Path) -> Iterator[tuple[Database, World]]:
    database = Database(make_settings(tmp_path, fresh_url))
    with database.session() as session:
        world = build_world(session)
    yield database, world
    database.dispose()


def check(url: str, since: datetime, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The program as support/lab_edge.py::central_python runs it: ARGS, the models, the code."""
    monkeypatch.setenv("PARKING_DATABASE_URL", url)
    args = json.dumps({"cameras": ["lane-out"], "since": since.timestamp()})
    head = f"import json\nARGS = json.loads({args!r})\nimport app.central.models\n"
    program = head + LEDGER_CHECK
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(program, "ledger_check", "exec"), {"__name__": "ledger_check"})  # noqa: S102
    result: dict[str, Any] = json.loads(out.getvalue().strip().splitlines()[-1])
    return result


def test_the_check_passes_centrals_decisions_and_names_a_tampered_one(
    world_db: tuple[Database, World], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, world = world_db
    since = datetime.now(UTC) - timedelta(seconds=5)
    now = datetime.now(UTC)
    app = create_app(make_settings(tmp_path, database.url), database=database, run_duties=False)
    entry, exit_ = {"X-API-Key": world.entry_key}, {"X-API-Key": world.exit_key}
    decisions = {}
    with TestClient(app) as client:
        for key, body, headers in (
            ("in-long", event_body("lane-in", "51A12345", at=now - timedelta(hours=2)), entry),
            ("in-short", event_body("lane-in", "30F67890", at=now - timedelta(minutes=5)), entry),
            ("held", event_body("lane-out", "51A12345", at=now), exit_),
            ("free", event_body("lane-out", "30F67890", at=now), exit_),
            ("stranger", event_body("lane-out", "99Z99999", at=now), exit_),
        ):
            answer = client.post("/api/v1/events", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            decisions[key] = (body["event_id"], answer.json()["decision"])
    assert decisions["held"][1]["action"] == "hold"
    assert decisions["free"][1]["action"] == "open"
    assert decisions["stranger"][1]["action"] == "deny"

    clean = check(database.url, since, monkeypatch)
    assert clean["bad"] == [], clean
    assert clean["actions"] == {"hold": 1, "open": 1, "deny": 1}

    def tamper(event_id: str, **decision: Any) -> None:
        with database.session() as session:
            row = session.scalars(
                select(PlateEvent).where(PlateEvent.event_id == uuid.UUID(event_id))
            ).one()
            row.ack = {**row.ack, "decision": {**row.ack["decision"], **decision}}
            session.commit()

    held_id, held = decisions["held"]
    tamper(held_id, action="open")  # a barrier opened for a vehicle that owed money
    found = check(database.url, since, monkeypatch)
    assert any(held_id in bad and "opened with" in bad for bad in found["bad"]), found
    tamper(held_id, action="hold", fee=held["fee"] + 1)  # held, but for the wrong amount
    found = check(database.url, since, monkeypatch)
    assert any(held_id in bad and "the ledger says" in bad for bad in found["bad"]), found
    free_id, _ = decisions["free"]
    tamper(free_id, action="hold", fee=5)  # held although nothing was due
    found = check(database.url, since, monkeypatch)
    assert any(free_id in bad and "nothing due" in bad for bad in found["bad"]), found

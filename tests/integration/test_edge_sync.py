"""The edge's lists (ETag, 304, lot scope) and its offline-decision reports, on SQLite and
PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.central.cameras.service import hash_api_key
from app.central.core.lots import ensure_lot
from app.central.lists.service import add_list_entry, add_subscription
from tests.conftest import World, event_body, token


def decision(camera_id: str, plate: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera_id,
        "plate": plate,
        "decided_at": datetime.now(UTC).isoformat(),
        "action": "open",
        "reason": "allow_listed",
        "basis": "allow_list",
        "lists_etag": '"abc"',
        "lists_age_s": 12.5,
        **extra,
    }


def test_lists_are_the_lots_and_a_matching_etag_answers_304(
    client: TestClient, world: World, db: Session
) -> None:
    now = datetime.now(UTC)
    ensure_lot(db, lot_id="lot-b")
    add_list_entry(db, plate="51F-111.11", kind="deny", lot_id=None, reason="", expires_at=None)
    add_list_entry(db, plate="51F-222.22", kind="allow", lot_id="lot-a", reason="", expires_at=None)
    add_list_entry(db, plate="51F-333.33", kind="allow", lot_id="lot-b", reason="", expires_at=None)
    add_list_entry(
        db,
        plate="51F-444.44",
        kind="allow",
        lot_id="lot-a",
        reason="",
        expires_at=now - timedelta(minutes=1),
    )
    add_subscription(
        db,
        plate="51F-555.55",
        lot_id="lot-a",
        holder="",
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=29),
    )
    add_subscription(
        db,
        plate="51F-666.66",
        lot_id="lot-a",
        holder="",
        valid_from=now - timedelta(days=40),
        valid_until=now - timedelta(days=10),
    )
    db.commit()
    key = {"X-API-Key": world.entry_key}

    first = client.get("/api/v1/edge/lists", headers=key)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["lot_id"], body["camera_id"]) == ("lot-a", "lane-in")
    assert [e["plate_normalized"] for e in body["deny"]] == ["51F11111"]
    assert [e["plate_normalized"] for e in body["allow"]] == ["51F22222"]  # lot-b's, expired out
    assert [p["plate_normalized"] for p in body["passes"]] == ["51F55555"]
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "no-cache"

    again = client.get("/api/v1/edge/lists", headers={**key, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    # The exit lane of the same lot has the same lists but its own body (camera_id).
    other = client.get("/api/v1/edge/lists", headers={"X-API-Key": world.exit_key})
    assert other.json()["camera_id"] == "lane-out"

    add_list_entry(db, plate="51F-777.77", kind="deny", lot_id="lot-a", reason="", expires_at=None)
    db.commit()
    changed = client.get("/api/v1/edge/lists", headers={**key, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert sorted(e["plate_normalized"] for e in changed.json()["deny"]) == [
        "51F11111",
        "51F77777",
    ]


def test_lists_need_a_camera_key(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/edge/lists").status_code == 401
    assert client.get("/api/v1/edge/lists", headers={"X-API-Key": "pk_nope"}).status_code == 401


def test_offline_decisions_are_stored_once_and_visible_with_their_session(
    client: TestClient, world: World
) -> None:
    key = {"X-API-Key": world.entry_key}
    allowed = decision("lane-in", "51F-222.22")
    denied = decision(
        "lane-in", "51F-111.11", action="deny", reason="deny_listed", basis="deny_list"
    )
    policy = decision(
        "lane-in", "30A-999.99", reason="offline_policy", basis="policy", flagged=True
    )
    report = {"decisions": [allowed, denied, policy]}

    first = client.post("/api/v1/edge/offline-decisions", json=report, headers=key)
    assert first.status_code == 200, first.text
    assert first.json() == {"stored": 3, "known": 0}
    # The link dropped before the edge saw the answer: the resend stores nothing twice.
    assert client.post("/api/v1/edge/offline-decisions", json=report, headers=key).json() == {
        "stored": 0,
        "known": 3,
    }

    # The event the allow decision was for arrives later through the outbox.
    event = event_body("lane-in", "51F-222.22", event_id=allowed["event_id"])
    assert client.post("/api/v1/events", json=event, headers=key).status_code == 200

    guard = token(client, "guard")
    summary = client.get("/api/v1/edge/offline-decisions", headers=guard).json()
    assert summary["total"] == 3
    assert summary["by_camera"] == {"lane-in": {"open": 2, "deny": 1}}
    items = {item["event_id"]: item for item in summary["items"]}
    assert items[allowed["event_id"]]["event_received"] is True
    assert items[allowed["event_id"]]["session_id"] is not None
    assert items[denied["event_id"]]["event_received"] is False
    assert items[policy["event_id"]]["flagged"] is True
    assert items[policy["event_id"]]["basis"] == "policy"

    only_exit = client.get(
        "/api/v1/edge/offline-decisions", params={"camera_id": "lane-out"}, headers=guard
    )
    assert only_exit.json()["total"] == 0
    metrics = client.get("/metrics").text
    assert 'parking_offline_decisions_reported_total{action="deny",basis="deny_list"}' in metrics
    # Operators only.
    assert client.get("/api/v1/edge/offline-decisions", headers=key).status_code == 401


def test_offline_decisions_of_another_camera_or_malformed_are_refused(
    client: TestClient, world: World
) -> None:
    key = {"X-API-Key": world.entry_key}
    other = {"decisions": [decision("lane-out", "51F-222.22")]}
    assert client.post("/api/v1/edge/offline-decisions", json=other, headers=key).status_code == 403
    empty = client.post("/api/v1/edge/offline-decisions", json={"decisions": []}, headers=key)
    assert empty.status_code == 422
    bad = {"decisions": [decision("lane-in", "51F-222.22", action="maybe")]}
    assert client.post("/api/v1/edge/offline-decisions", json=bad, headers=key).status_code == 422
    summary = client.get("/api/v1/edge/offline-decisions", headers=token(client, "guard")).json()
    assert summary["total"] == 0


def test_rotate_camera_key_cli_replaces_the_key(fresh_url: str, tmp_path: Path) -> None:
    """What roles/edge runs when a host's key is lost: the camera exists, a new key is printed
    once, and only the new key opens the edge's lists."""
    env = {**os.environ, "PARKING_DATABASE_URL": fresh_url, "PARKING_DATA_DIR": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.central.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    first = cli("create-camera", "gate-r-in", "--lot", "north", "--direction", "entry")
    assert first.returncode == 0, first.stderr
    again = cli("create-camera", "gate-r-in", "--lot", "north", "--direction", "entry")
    assert again.returncode == 2 and "already exists" in again.stderr
    rotated = cli("rotate-camera-key", "gate-r-in")
    assert rotated.returncode == 0, rotated.stderr
    old_key, new_key = first.stdout.strip(), rotated.stdout.strip()
    assert new_key.startswith("pk_") and new_key != old_key
    assert cli("rotate-camera-key", "nope").returncode == 2

    engine = create_engine(fresh_url)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT api_key_hash FROM cameras WHERE id = 'gate-r-in'")
        ).scalar_one()
    engine.dispose()
    assert stored == hash_api_key(new_key) != hash_api_key(old_key)

"""People: login, the role matrix, audited corrections and manual gate opens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.operators.models import Operator
from tests.conftest import PASSWORD, World, event_body, token

# (method, path, body, lowest role allowed)
MATRIX = [
    ("GET", "/api/v1/sessions", None, "guard"),
    ("GET", "/api/v1/cameras", None, "guard"),
    ("GET", "/api/v1/lots", None, "guard"),
    ("GET", "/api/v1/anomalies", None, "guard"),
    ("POST", "/api/v1/cameras/lane-in/open", {"reason": "barrier stuck"}, "guard"),
    ("GET", "/api/v1/audit", None, "manager"),
    (
        "PUT",
        "/api/v1/tariffs",
        {"lot_id": "lot-a", "vehicle_type": "bus", "hourly_rate": 1},
        "manager",
    ),
    ("POST", "/api/v1/lists", {"plate": "29A-111.11", "kind": "deny"}, "manager"),
    ("PATCH", "/api/v1/lots/lot-a", {"capacity": 20}, "manager"),
    ("GET", "/api/v1/users", None, "admin"),
    (
        "POST",
        "/api/v1/users",
        {"username": "new-guard", "password": "longenough1", "role": "guard"},
        "admin",
    ),
    ("POST", "/api/v1/cameras", {"id": "lane-2", "lot_id": "lot-a", "direction": "entry"}, "admin"),
    ("POST", "/api/v1/plates/erase", {"plate": "29A-999.99", "reason": "owner asked"}, "admin"),
]
RANK = {"guard": 1, "manager": 2, "admin": 3}


@pytest.mark.parametrize(("method", "path", "body", "lowest"), MATRIX)
def test_role_matrix(
    client: TestClient,
    world: World,
    method: str,
    path: str,
    body: dict[str, object] | None,
    lowest: str,
) -> None:
    assert client.request(method, path, json=body).status_code == 401
    for role in ("guard", "manager", "admin"):
        response = client.request(method, path, json=body, headers=token(client, role))
        if RANK[role] >= RANK[lowest]:
            assert response.status_code < 400, f"{role} {method} {path}: {response.text}"
        else:
            assert response.status_code == 403, f"{role} {method} {path}: {response.text}"


def test_wrong_password_and_unknown_user_are_401(client: TestClient, world: World) -> None:
    wrong = client.post("/api/v1/auth/token", data={"username": "guard", "password": "nope"})
    unknown = client.post("/api/v1/auth/token", data={"username": "ghost", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


@pytest.mark.real_password_hashing
def test_passwords_are_stored_with_productions_argon2id_and_verify(
    client: TestClient, world: World, db: Session
) -> None:
    """The one place tests use production's hashing (tests/conftest.py makes it cheap
    elsewhere): what is stored is argon2id at 64 MiB, 3 passes, 4 lanes, never the password,
    and it lets the right password in and the wrong one not."""
    stored = db.scalar(select(Operator.password_hash).where(Operator.username == "guard"))
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), stored
    assert PASSWORD not in stored
    assert client.get("/api/v1/sessions", headers=token(client, "guard")).status_code == 200
    wrong = client.post("/api/v1/auth/token", data={"username": "guard", "password": "nope"})
    assert wrong.status_code == 401


def test_forged_token_is_401(client: TestClient, world: World) -> None:
    import jwt

    forged = jwt.encode(
        {"sub": "admin", "role": "admin", "exp": 9_999_999_999},
        "a-guessed-key-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    response = client.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_disabled_user_loses_access_immediately(client: TestClient, world: World) -> None:
    guard = token(client, "guard")
    assert client.get("/api/v1/sessions", headers=guard).status_code == 200
    client.patch("/api/v1/users/guard", json={"active": False}, headers=token(client, "admin"))
    assert client.get("/api/v1/sessions", headers=guard).status_code == 401


def test_login_is_rate_limited(client: TestClient, world: World) -> None:
    limiter = client.app.state.parking.login_limiter  # type: ignore[attr-defined]
    limiter.burst, limiter.rate = 3.0, 0.01
    codes = [
        client.post("/api/v1/auth/token", data={"username": "guard", "password": "bad"}).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [401, 401, 401]
    assert codes[3] == 429
    limited = client.post("/api/v1/auth/token", data={"username": "guard", "password": PASSWORD})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


def test_camera_key_is_rate_limited(client: TestClient, world: World) -> None:
    limiter = client.app.state.parking.camera_limiter  # type: ignore[attr-defined]
    limiter.burst, limiter.rate = 2.0, 0.01
    codes = [
        client.post(
            "/api/v1/events",
            json=event_body("lane-in", f"51F-{i}00.00"),
            headers={"X-API-Key": world.entry_key},
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]


def test_plate_correction_reevaluates_fee_and_is_audited(client: TestClient, world: World) -> None:
    manager = token(client, "manager")
    start = datetime.now(UTC) - timedelta(hours=2, minutes=50)
    client.post(
        "/api/v1/subscriptions",
        headers=manager,
        json={
            "plate": "51F-999.99",
            "lot_id": "lot-a",
            "holder": "Mr. Binh",
            "valid_from": (start - timedelta(days=1)).isoformat(),
            "valid_until": (start + timedelta(days=30)).isoformat(),
        },
    )
    # The reader misread the subscriber's plate at both lanes: he was charged.
    client.post(
        "/api/v1/events",
        json=event_body("lane-in", "51F-999.98", at=start),
        headers={"X-API-Key": world.entry_key},
    )
    closed = client.post(
        "/api/v1/events",
        json=event_body("lane-out", "51F-999.98"),
        headers={"X-API-Key": world.exit_key},
    ).json()
    assert closed["decision"]["fee"] == 60_000
    assert closed["decision"]["action"] == "hold"  # the subscriber waits at the barrier
    guard_try = client.patch(
        f"/api/v1/sessions/{closed['session_id']}",
        json={"plate": "51F-999.99", "reason": "misread"},
        headers=token(client, "guard"),
    )
    assert guard_try.status_code == 403
    fixed = client.patch(
        f"/api/v1/sessions/{closed['session_id']}",
        json={"plate": "51F-999.99", "reason": "misread 9 as 8"},
        headers=manager,
    )
    assert fixed.status_code == 200, fixed.text
    # Under the right plate nothing is due: the session closes and the lane is told to open.
    assert fixed.json()["fee"] == 0
    assert fixed.json()["status"] == "closed"
    audit = client.get("/api/v1/audit?action=session.correct_plate", headers=manager).json()
    assert audit[0]["actor"] == "manager"
    assert audit[0]["details"]["released_lane"] == "lane-out"
    opens = client.get("/api/v1/audit?action=gate.open_corrected", headers=manager).json()
    assert [o["target_id"] for o in opens] == ["lane-out"]
    assert audit[0]["reason"] == "misread 9 as 8"
    assert audit[0]["details"] == {
        "before": {"plate": "51F-999.98", "fee": 60_000},
        "after": {"plate": "51F-999.99", "fee": 0},
        "released_lane": "lane-out",
    }


def test_manual_gate_open_needs_a_reason_and_is_audited(client: TestClient, world: World) -> None:
    guard = token(client, "guard")
    missing = client.post("/api/v1/cameras/lane-out/open", json={}, headers=guard)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "reason"]
    ok = client.post("/api/v1/cameras/lane-out/open", json={"reason": "ambulance"}, headers=guard)
    assert ok.status_code == 202
    # No agent holds the lane's command poll here: reported failed at once, not queued.
    assert ok.json()["status"] == "failed"
    assert ok.json()["detail"].startswith("lane offline")
    audit = client.get(
        "/api/v1/audit?action=gate.manual_open", headers=token(client, "manager")
    ).json()
    assert [(a["actor"], a["target_id"], a["reason"]) for a in audit] == [
        ("guard", "lane-out", "ambulance")
    ]


def test_sessions_search_exact_and_fuzzy(client: TestClient, world: World) -> None:
    for plate in ("51F-123.45", "51F-123.46", "30A-999.99"):
        client.post(
            "/api/v1/events",
            json=event_body("lane-in", plate),
            headers={"X-API-Key": world.entry_key},
        )
    guard = token(client, "guard")
    exact = client.get("/api/v1/sessions", params={"plate": "51f12345"}, headers=guard).json()
    fuzzy = client.get(
        "/api/v1/sessions", params={"plate": "51F-123.4", "fuzzy": "true"}, headers=guard
    ).json()
    assert [s["plate"] for s in exact] == ["51F-123.45"]
    assert sorted(s["plate"] for s in fuzzy) == ["51F-123.45", "51F-123.46"]
    opened = client.get("/api/v1/sessions", params={"status": "open"}, headers=guard).json()
    assert len(opened) == 3


def test_guard_resolves_an_anomaly_with_a_note(client: TestClient, world: World) -> None:
    client.post(
        "/api/v1/events",
        json=event_body("lane-out", "99Z-999.99"),
        headers={"X-API-Key": world.exit_key},
    )
    guard = token(client, "guard")
    (anomaly,) = client.get("/api/v1/anomalies", params={"resolved": "false"}, headers=guard).json()
    assert anomaly["kind"] == "exit_without_entry"
    url = f"/api/v1/anomalies/{anomaly['id']}/resolve"
    assert client.post(url, json={}, headers=guard).status_code == 422
    done = client.post(url, json={"note": "visitor, paid cash"}, headers=guard)
    assert done.status_code == 200
    assert done.json()["resolved"] is True
    assert client.post(url, json={"note": "again"}, headers=guard).status_code == 409
    audit = client.get(
        "/api/v1/audit", params={"action": "anomaly.resolve"}, headers=token(client, "manager")
    ).json()
    assert [(a["actor"], a["reason"]) for a in audit] == [("guard", "visitor, paid cash")]

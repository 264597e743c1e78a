"""Hostile input, by class (issue 18): values at the edges of their types, times that cannot be
right, access that should end, the client address behind a proxy, operators locking everyone
out, secrets in logs, security headers."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.central.cameras.service import create_camera
from app.central.core.lots import ensure_lot
from app.central.db import Database
from app.central.errors import Conflict, InvalidInput
from app.central.logs import RedactSecrets
from app.central.main import create_app
from app.central.operators.service import create_operator, set_active
from app.central.sessions.models import Anomaly
from support.central import CentralProcess
from support.pg import free_port
from support.server import serving
from tests.conftest import PASSWORD, World, build_world, event_body, make_settings, token


def test_every_integer_parameter_of_the_api_is_bounded(client: TestClient) -> None:
    """An unbounded integer in a path or query reaches the database driver: 2**70 overflows."""
    unbounded = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                variants = [schema, *schema.get("anyOf", [])]
                if any(v.get("type") == "integer" for v in variants) and not any(
                    "maximum" in v for v in variants
                ):
                    unbounded.append(f"{method.upper()} {path} {parameter['name']}")
    assert unbounded == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/sessions/{big}", "session_id"),
        ("/api/v1/reports/sessions/{big}", "session_id"),
        ("/api/v1/sessions?offset={big}", "offset"),
        ("/api/v1/reports/day?day=0001-01-01", "day"),
        ("/api/v1/reports/day?day=9999-12-31", "day"),
        ("/api/v1/payments?start=0001-01-01", "start"),
        ("/api/v1/reports/revenue?start=2026-01-01&end=9999-12-31", "end"),
    ],
)
def test_values_at_the_ends_of_their_types_are_a_422_naming_the_field(
    client: TestClient, world: World, path: str, field: str
) -> None:
    response = client.get(path.format(big=2**70), headers=token(client, "admin"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plate": "51F-123.45", "kind": "deny", "lot_id": "no-such-lot"}, "lot_id"),
        ({"plate": "51F-123.45", "kind": "deny", "expires_at": "9999-12-31T23:00:00-05:00"},
         "expires_at"),
        ({"plate": "51F-123.45", "kind": "deny", "expires_at": "0001-01-01T00:00:00+05:00"},
         "expires_at"),
    ],
)  # fmt: skip
def test_list_entries_refer_to_real_lots_and_dates_within_the_calendar(
    client: TestClient, world: World, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/lists", json=body, headers=token(client, "manager"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == field


# -- time that cannot be right -------------------------------------------------------------------


@pytest.mark.parametrize(
    "captured_at",
    [
        datetime(1970, 1, 1, 0, 0, 42, tzinfo=UTC),  # a Raspberry Pi booted without network time
        datetime.now(UTC) - timedelta(days=45),  # older than any outbox keeps it
        "9999-12-31T23:30:00-05:00",  # past the end of the calendar in UTC
    ],
)
def test_an_event_at_an_impossible_time_is_refused_naming_captured_at(
    client: TestClient, world: World, captured_at: datetime | str
) -> None:
    body = event_body("lane-in", "51F-123.45")
    body["captured_at"] = captured_at if isinstance(captured_at, str) else captured_at.isoformat()
    response = client.post("/api/v1/events", json=body, headers={"X-API-Key": world.entry_key})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == "captured_at"


def test_an_event_from_before_its_camera_existed_is_refused(
    client: TestClient, world: World, db: Session
) -> None:
    _, key = create_camera(db, camera_id="lane-new", lot_id="lot-a", direction="entry")
    db.commit()
    body = event_body("lane-new", "51F-123.45", at=datetime.now(UTC) - timedelta(days=3))
    response = client.post("/api/v1/events", json=body, headers={"X-API-Key": key})
    assert response.status_code == 422
    assert "registered" in response.json()["detail"][0]["msg"]
    fresh = event_body("lane-new", "51F-123.45", at=datetime.now(UTC) - timedelta(hours=2))
    ok = client.post("/api/v1/events", json=fresh, headers={"X-API-Key": key})
    assert ok.status_code == 200  # within a day of its registration: installed and reading


def test_an_exit_before_its_own_entry_is_flagged(
    client: TestClient, world: World, db: Session
) -> None:
    now = datetime.now(UTC)
    client.post(
        "/api/v1/events",
        json=event_body("lane-in", "51F-777.77", at=now - timedelta(minutes=5)),
        headers={"X-API-Key": world.entry_key},
    )
    out = client.post(
        "/api/v1/events",
        json=event_body("lane-out", "51F-777.77", at=now - timedelta(hours=3)),
        headers={"X-API-Key": world.exit_key},
    ).json()
    assert out["anomaly"] == "exit_before_entry"
    kinds = db.scalars(select(Anomaly.kind).where(Anomaly.plate == "51F-777.77")).all()
    assert "exit_before_entry" in kinds


# -- access that should end ----------------------------------------------------------------------


def _read_until_closed(ws: Any) -> None:
    while True:
        ws.recv(timeout=5)


def test_a_disabled_operators_live_feed_is_closed(fresh_sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fresh_sqlite_url, live_recheck_s=0.5)
    database = Database(settings)
    with database.session() as db:
        build_world(db)
    app = create_app(settings, database=database, run_duties=False)
    with serving(app) as base:

        def login(user: str) -> str:
            response = httpx.post(
                f"{base}/api/v1/auth/token", data={"username": user, "password": PASSWORD}
            )
            return str(response.json()["access_token"])

        ws_url = base.replace("http", "ws") + "/api/v1/live"
        with connect(ws_url, subprotocols=[f"bearer.{login('guard')}"]) as ws:  # type: ignore[list-item]
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
            disabled = httpx.patch(
                f"{base}/api/v1/users/guard",
                json={"active": False},
                headers={"Authorization": f"Bearer {login('admin')}"},
            )
            assert disabled.status_code == 200
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                _read_until_closed(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            assert time.monotonic() - started < 3
    database.dispose()


def test_the_role_comes_from_the_database_not_the_token(
    client: TestClient, world: World, db: Session
) -> None:
    manager = token(client, "manager")
    assert client.get("/api/v1/audit", headers=manager).status_code == 200
    from app.central.operators.models import Operator

    row = db.scalar(select(Operator).where(Operator.username == "manager"))
    assert row is not None
    row.role = "guard"
    db.commit()
    assert client.get("/api/v1/audit", headers=manager).status_code == 403


# -- operators locking everyone out, names the API refuses ---------------------------------------


def test_nobody_disables_themselves_or_the_last_admin(db: Session, world: World) -> None:
    with pytest.raises(Conflict):
        set_active(db, username="admin", active=False, actor="admin")
    create_operator(db, username="admin2", password=PASSWORD, role="admin")
    set_active(db, username="admin2", active=False, actor="admin")  # another admin remains
    with pytest.raises(Conflict, match="last active admin"):
        set_active(db, username="admin", active=False, actor="manager")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda db: create_operator(db, username="has space", password=PASSWORD, role="guard"),
         "username"),
        (lambda db: create_camera(db, camera_id="Gate 1", lot_id="lot-a", direction="entry"),
         "camera_id"),
        (lambda db: ensure_lot(db, lot_id="Lot A!"), "lot_id"),
    ],
)  # fmt: skip
def test_the_services_refuse_the_names_the_api_refuses(
    db: Session, world: World, make: Any, field: str
) -> None:
    """The CLI calls these services directly: a camera it made must be able to post events."""
    with pytest.raises(InvalidInput) as refused:
        make(db)
    assert refused.value.field == field


# -- the client's address ------------------------------------------------------------------------


def _central(tmp_path: Path, **env: str) -> CentralProcess:
    central = CentralProcess(
        tmp_path,
        free_port(),
        env_extra={"PARKING_LOG_LEVEL": "INFO", "PARKING_LOG_JSON": "false", **env},
    )
    central.cli("migrate")
    central.cli("create-user", "alice", "--role", "guard", stdin=PASSWORD + "\n")
    central.start()
    return central


def test_failed_logins_across_many_names_are_bounded_per_address_and_xff_is_not_believed(
    tmp_path: Path,
) -> None:
    central = _central(tmp_path, PARKING_CLIENT_FAILURES_PER_MIN="5")
    try:
        codes = []
        for i in range(7):
            response = httpx.post(
                f"{central.url}/api/v1/auth/token",
                data={"username": f"user{i}", "password": "wrong-password"},
                # Not a trusted proxy: a forged X-Forwarded-For changes nothing.
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            codes.append(response.status_code)
        assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
        right = httpx.post(
            f"{central.url}/api/v1/auth/token", data={"username": "alice", "password": PASSWORD}
        )
        assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1
    finally:
        central.stop()


def test_a_trusted_proxys_forwarded_address_is_the_client(tmp_path: Path) -> None:
    central = _central(
        tmp_path, PARKING_CLIENT_FAILURES_PER_MIN="3", PARKING_TRUSTED_PROXIES="127.0.0.1"
    )
    try:
        for i in range(6):  # six clients behind the load balancer, one failure each
            response = httpx.post(
                f"{central.url}/api/v1/auth/token",
                data={"username": "alice", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            assert response.status_code == 401
        ok = httpx.post(
            f"{central.url}/api/v1/auth/token",
            data={"username": "alice", "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        assert ok.status_code == 200
        # A live feed's token in the query string never reaches the log.
        token_value = ok.json()["access_token"]
        ws_url = central.url.replace("http", "ws") + f"/api/v1/live?token={token_value}"
        with connect(ws_url) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        time.sleep(0.5)
        log = central.log.read_text()
        assert token_value not in log
        assert "token=[redacted]" in log
    finally:
        central.stop()


def test_unknown_camera_keys_are_bounded_per_address(tmp_path: Path) -> None:
    central = _central(tmp_path, PARKING_CLIENT_FAILURES_PER_MIN="4")
    try:
        codes = [
            httpx.post(
                f"{central.url}/api/v1/events",
                json=event_body("lane-x", "51F-123.45"),
                headers={"X-API-Key": f"pk_guess{i}"},
            ).status_code
            for i in range(6)
        ]
        assert codes == [401] * 4 + [429] * 2
    finally:
        central.stop()


# -- logs and headers ----------------------------------------------------------------------------


def test_credentials_in_urls_are_redacted_from_every_log_line() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, "", 0,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/api/v1/live?token=eyJhbGciOi.abc.def&x=1"), None,
    )  # fmt: skip
    RedactSecrets().filter(record)
    assert record.getMessage() == (
        '127.0.0.1:5000 - "WebSocket /api/v1/live?token=[redacted]&x=1" [accepted]'
    )


def test_central_itself_sends_security_headers(client: TestClient) -> None:
    for path in ("/api/health/live", "/", "/api/v1/sessions"):
        response = client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path

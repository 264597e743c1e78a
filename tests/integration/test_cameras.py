"""Heartbeats, camera status and reconciliation of captured (edge) vs received (central)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.conftest import World, event_body, token


def heartbeat(client: TestClient, key: str, camera_id: str, **figures: object) -> int:
    body = {"sent_at": datetime.now(UTC).isoformat(), **figures}
    response = client.post(
        f"/api/v1/cameras/{camera_id}/heartbeat", json=body, headers={"X-API-Key": key}
    )
    status: int = response.status_code
    return status


def test_heartbeat_sets_online_and_reconciliation_shows_the_gap(
    client: TestClient, world: World
) -> None:
    for plate in ("51F-111.11", "51F-222.22"):
        client.post(
            "/api/v1/events",
            json=event_body("lane-in", plate),
            headers={"X-API-Key": world.entry_key},
        )
    # The edge captured three; one is still in its outbox.
    assert (
        heartbeat(
            client, world.entry_key, "lane-in", captured_total=3, delivered_total=2, outbox_depth=1
        )
        == 204
    )
    cameras = {
        c["id"]: c for c in client.get("/api/v1/cameras", headers=token(client, "guard")).json()
    }
    lane = cameras["lane-in"]
    assert lane["online"] is True
    assert lane["health"]["outbox_depth"] == 1
    assert (lane["captured_total"], lane["received_total"], lane["reconciliation_gap"]) == (3, 2, 1)
    assert cameras["lane-out"]["online"] is False


def test_heartbeat_for_another_camera_is_403(client: TestClient, world: World) -> None:
    assert heartbeat(client, world.entry_key, "lane-out") == 403


def test_bad_heartbeat_is_422_and_unknown_key_401(client: TestClient, world: World) -> None:
    assert heartbeat(client, world.entry_key, "lane-in", outbox_depth=-1) == 422
    assert heartbeat(client, "pk_nope", "lane-in") == 401


def test_admin_creates_camera_and_key_is_shown_once(client: TestClient, world: World) -> None:
    admin = token(client, "admin")
    made = client.post(
        "/api/v1/cameras",
        headers=admin,
        json={"id": "lane-9", "lot_id": "new-lot", "direction": "exit"},
    )
    assert made.status_code == 201
    key = made.json()["api_key"]
    listed = client.get("/api/v1/cameras", headers=admin).text
    assert key not in listed
    assert heartbeat(client, key, "lane-9") == 204
    rotated = client.post("/api/v1/cameras/lane-9/rotate-key", headers=admin).json()["api_key"]
    assert heartbeat(client, key, "lane-9") == 401
    assert heartbeat(client, rotated, "lane-9") == 204
    lots = {lot["id"] for lot in client.get("/api/v1/lots", headers=admin).json()}
    assert "new-lot" in lots


def test_metrics_expose_requests_and_ingest(client: TestClient, world: World) -> None:
    client.post(
        "/api/v1/events",
        json=event_body("lane-in", "51F-333.33"),
        headers={"X-API-Key": world.entry_key},
    )
    text = client.get("/metrics").text
    assert 'parking_http_requests_total{method="POST",route="/api/v1/events",status="200"}' in text
    assert 'parking_events_ingested_total{result="accepted"}' in text
    assert "parking_http_request_duration_seconds_bucket" in text
    assert 'parking_db_pool_connections{state="size"}' in text


def test_dashboard_is_served_without_shadowing_the_api(client: TestClient, world: World) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="login"' in page.text
    assert client.get("/api/health/live").json() == {"status": "alive"}

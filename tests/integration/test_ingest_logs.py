"""One log line per event central answers, with its ``event_id``, ``camera_id`` and outcome
(stored, replayed, refused), on the route, the batch route and the fast path
(events/routes.py, events/fastpath.py), in the line format of app/contract/logs.py."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.central.db import Database
from app.central.deps import db_session
from app.central.events.routes import ingest_log
from app.central.logs import RequestIdFilter
from app.central.main import create_app
from app.central.settings import Settings
from support.logs import JsonLines, json_lines
from support.server import serving
from tests.conftest import World, build_world, event_body, make_settings

FIELDS = {"ts", "level", "logger", "msg", "service", "event_id", "camera_id", "outcome", "via"}


def _ingest_lines(lines: JsonLines) -> list[dict[str, Any]]:
    return [line for line in lines.lines if line["logger"] == ingest_log.name]


def _outcomes(lines: JsonLines, event_id: object) -> list[tuple[str, str]]:
    return [(line["outcome"], line["via"]) for line in lines.about(event_id)]


def test_route_logs_one_line_per_event_with_its_outcome(client: TestClient, world: World) -> None:
    key = {"X-API-Key": world.entry_key}
    body = event_body("lane-in", "51F-123.45")
    foreign = event_body("lane-out", "51F-999.99")  # another camera's id, with this key
    with json_lines(service="parking-central", filters=[RequestIdFilter()]) as lines:
        assert client.post("/api/v1/events", json=body, headers=key).status_code == 200
        assert client.post("/api/v1/events", json=body, headers=key).status_code == 200
        assert client.post("/api/v1/events", json=foreign, headers=key).status_code == 409
    # The first request authenticates on the route (and caches the key); the TestClient's later
    # ones take the production fast path, which logs the same line with via "fast".
    assert _outcomes(lines, body["event_id"]) == [("stored", "route"), ("replayed", "fast")]
    assert _outcomes(lines, foreign["event_id"]) == [("refused", "route")]
    for line in _ingest_lines(lines):
        assert line.keys() >= FIELDS, line
        assert line["level"] == "info"
        assert line["event_id"] in line["msg"], "text logs name the event too"
        assert line["request_id"]
    stored = lines.about(body["event_id"])[0]
    assert (stored["camera_id"], stored["action"], stored["reason"]) == (
        "lane-in",
        "open",
        "entry_allowed",
    )
    refused = lines.about(foreign["event_id"])[0]
    assert refused["status"] == 409 and "camera" in refused["reason"]
    assert len(_ingest_lines(lines)) == 3


def test_batch_logs_one_line_per_event(client: TestClient, world: World) -> None:
    key = {"X-API-Key": world.entry_key}
    events = [event_body("lane-in", f"51F-100.{n:02d}") for n in range(5)]
    with json_lines(service="parking-central", filters=[RequestIdFilter()]) as lines:
        first = client.post("/api/v1/events/batch", json={"events": events[:3]}, headers=key)
        again = client.post("/api/v1/events/batch", json={"events": events}, headers=key)
        bad = [event_body("lane-in", "51F-300.00"), event_body("lane-out", "51F-200.00")]
        refused = client.post("/api/v1/events/batch", json={"events": bad}, headers=key)
    assert first.status_code == again.status_code == 200
    assert refused.status_code == 409
    for n, body in enumerate(events):
        expected = [("stored", "batch"), ("replayed", "batch")] if n < 3 else [("stored", "batch")]
        assert _outcomes(lines, body["event_id"]) == expected, n
    # All or nothing: every event of the refused batch is named as refused.
    assert [(line["event_id"], line["outcome"]) for line in _ingest_lines(lines)[-2:]] == [
        (body["event_id"], "refused") for body in bad
    ]
    assert Counter(line["request_id"] for line in _ingest_lines(lines)) == Counter(
        {
            first.headers["x-request-id"]: 3,
            again.headers["x-request-id"]: 5,
            refused.headers["x-request-id"]: 2,
        }
    )


def test_nothing_is_logged_or_built_when_info_is_off(client: TestClient, world: World) -> None:
    body = event_body("lane-in", "51F-123.45")
    ingest_log.setLevel(logging.WARNING)
    try:
        with json_lines(service="parking-central") as lines:
            answer = client.post(
                "/api/v1/events", json=body, headers={"X-API-Key": world.entry_key}
            )
    finally:
        ingest_log.setLevel(logging.NOTSET)
    assert answer.status_code == 200
    assert _ingest_lines(lines) == []


def test_fast_path_logs_one_line_per_event_with_the_request_id(
    fresh_url: str, tmp_path: Path
) -> None:
    """A real server, no dependency overrides: after the first request caches the key, the
    fast path answers; its lines are the route's, ``via`` aside."""
    settings = make_settings(tmp_path, fresh_url)
    database = Database(settings)
    with database.session() as db:
        world = build_world(db)
    app = create_app(settings, database=database, run_duties=False)
    entry, exit_ = {"X-API-Key": world.entry_key}, {"X-API-Key": world.exit_key}
    warm, body = event_body("lane-in", "51F-100.01"), event_body("lane-in", "51F-100.02")
    with (
        serving(app) as base,
        httpx.Client(base_url=base, timeout=30) as http,
        json_lines(service="parking-central", filters=[RequestIdFilter()]) as lines,
    ):
        assert http.post("/api/v1/events", json=warm, headers=entry).status_code == 200
        fast = http.post("/api/v1/events", json=body, headers={**entry, "X-Request-ID": "r-1"})
        again = http.post("/api/v1/events", json=body, headers=entry)
        out = http.post("/api/v1/events", json=event_body("lane-out", "51F-100.01"), headers=exit_)
        assert out.status_code == 200, out.text  # the route answers, and caches the exit key
        reused = event_body("lane-out", "51F-100.04", event_id=body["event_id"])
        conflict = http.post("/api/v1/events", json=reused, headers=exit_)
    database.dispose()
    assert fast.status_code == again.status_code == 200
    assert conflict.status_code == 409
    assert _outcomes(lines, warm["event_id"]) == [("stored", "route")]
    assert _outcomes(lines, body["event_id"]) == [
        ("stored", "fast"),
        ("replayed", "fast"),
        ("refused", "fast"),
    ]
    about = lines.about(body["event_id"])
    assert [line["request_id"] for line in about] == [
        "r-1",
        again.headers["x-request-id"],
        conflict.headers["x-request-id"],
    ]
    assert [line["camera_id"] for line in about] == ["lane-in", "lane-in", "lane-out"]
    assert about[2]["status"] == 409


def test_central_writes_the_json_lines_it_is_configured_for(
    tmp_path: Path, shared_database: Database, db: Session, world: World
) -> None:
    """Production's own handlers (configure_logging): the log file holds JSON lines, and the
    ingest line carries the request id."""
    log_file = tmp_path / "central.log"
    settings: Settings = make_settings(
        tmp_path, shared_database.url, log_json=True, log_file=log_file
    )
    app = create_app(settings, database=shared_database, run_duties=False)

    def transactional() -> Any:
        yield db

    app.dependency_overrides[db_session] = transactional
    body = event_body("lane-in", "51F-123.45", event_id=str(uuid.uuid4()))
    with TestClient(app) as client:
        answer = client.post(
            "/api/v1/events",
            json=body,
            headers={"X-API-Key": world.entry_key, "X-Request-ID": "abc-123"},
        )
    assert answer.status_code == 200
    lines = [json.loads(text) for text in log_file.read_text().splitlines()]
    assert all(line["service"] == "parking-central" for line in lines)
    mine = [line for line in lines if line.get("event_id") == body["event_id"]]
    assert [(line["outcome"], line["request_id"]) for line in mine] == [("stored", "abc-123")]

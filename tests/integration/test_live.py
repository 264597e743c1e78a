"""The live feed: an event ingested by one central reaches dashboards on every central."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.central.db import Database
from app.central.main import create_app
from support.server import serving
from tests.conftest import PASSWORD, build_world, event_body, make_settings


def login(base: str, username: str) -> str:
    response = httpx.post(
        f"{base}/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def next_of_type(
    ws: Any, kind: str, timeout: float = 5.0, seen: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The next message of ``kind``; others are kept in ``seen`` by type."""
    seen = {} if seen is None else seen
    deadline = time.monotonic() + timeout
    while kind not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind} message within {timeout}s; saw {sorted(seen)}"
        message: dict[str, Any] = json.loads(ws.recv(timeout=remaining))
        seen.setdefault(message["type"], message)
    return seen.pop(kind)


def test_ws_delivery_across_two_instances_on_one_database(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """Two instances share state only through PostgreSQL (LISTEN/NOTIFY)."""
    settings = make_settings(tmp_path, fresh_pg_url)
    db_a, db_b = Database(settings), Database(settings)
    with db_a.session() as db:
        world = build_world(db)
    app_a = create_app(settings, database=db_a, run_duties=False)
    app_b = create_app(settings, database=db_b, run_duties=False)
    with serving(app_a) as base_a, serving(app_b) as base_b:
        ws_url = base_b.replace("http", "ws") + f"/api/v1/live?token={login(base_b, 'guard')}"
        with connect(ws_url) as ws:
            assert next_of_type(ws, "hello")["data"]["role"] == "guard"
            listener = app_b.state.listener
            assert listener.connected.wait(10), "instance B never started LISTENing"
            body = event_body("lane-in", "51F-246.80")
            sent = time.monotonic()
            response = httpx.post(
                f"{base_a}/api/v1/events", json=body, headers={"X-API-Key": world.entry_key}
            )
            assert response.status_code == 200
            seen: dict[str, dict[str, Any]] = {}
            message = next_of_type(ws, "plate_event", timeout=2.0, seen=seen)
            assert time.monotonic() - sent < 1.0
            assert message["data"]["event_id"] == body["event_id"]
            assert message["data"]["decision"]["action"] == "open"
            opened = next_of_type(ws, "session_opened", seen=seen)
            assert opened["data"]["plate"] == "51F-246.80"
    db_a.dispose()
    db_b.dispose()


def test_ws_in_process_on_sqlite_and_auth(fresh_sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fresh_sqlite_url)
    database = Database(settings)
    with database.session() as db:
        world = build_world(db)
    app = create_app(settings, database=database, run_duties=False)
    with serving(app) as base:
        ws_base = base.replace("http", "ws") + "/api/v1/live"
        with pytest.raises(ConnectionClosed) as refused, connect(f"{ws_base}?token=bogus") as ws:
            ws.recv(timeout=5)
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401
        # The token may also travel as a subprotocol (browsers cannot set headers).
        token = login(base, "manager")
        with connect(ws_base, subprotocols=[f"bearer.{token}"]) as ws:  # type: ignore[list-item]
            next_of_type(ws, "hello")
            httpx.post(
                f"{base}/api/v1/events",
                json=event_body("lane-in", "30A-111.22"),
                headers={"X-API-Key": world.entry_key},
            ).raise_for_status()
            assert next_of_type(ws, "plate_event")["data"]["plate"] == "30A-111.22"
            guard_open = httpx.post(
                f"{base}/api/v1/cameras/lane-in/open",
                json={"reason": "visitor without plate"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert guard_open.status_code == 202
            command = next_of_type(ws, "lane_command")["data"]
            assert command["reason"] == "visitor without plate"
            assert command["status"] == "failed"  # no agent listens on this lane
    database.dispose()


def test_shutdown_closes_live_clients_with_going_away(
    fresh_sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fresh_sqlite_url)
    database = Database(settings)
    with database.session() as db:
        build_world(db)
    app = create_app(settings, database=database, run_duties=False)
    with serving(app) as base:
        ws = connect(base.replace("http", "ws") + f"/api/v1/live?token={login(base, 'guard')}")
        next_of_type(ws, "hello")
        import asyncio

        from app.central.core.state import AppState

        state: AppState = app.state.parking
        loop = state.hub._loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(state.hub.close_all(1001), loop).result(5)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    database.dispose()


def test_a_transactions_notifications_arrive_whole_and_in_order(fresh_pg_url: str) -> None:
    """Messages over several 8000-byte NOTIFY payloads (sent in one statement) arrive, every
    one, in the order they were announced, only after the commit; a rollback sends none."""
    import psycopg
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from app.central.core.hub import LiveHub
    from app.central.live import bridge
    from app.central.live.service import CHANNEL, announce

    engine = create_engine(fresh_pg_url)
    factory = sessionmaker(engine)
    bridge.install(factory, LiveHub(), postgres=True)
    conninfo = bridge.libpq_conninfo(fresh_pg_url)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        with factory() as session:
            announce(session, kind="doomed", data={"n": -1})
            session.rollback()
        with factory() as session_:
            for n in range(40):
                announce(session_, kind="plate_event", data={"n": n, "pad": "x" * 600})
            session_.commit()
        received: list[dict[str, Any]] = []
        notes = 0
        for note in listener.notifies(timeout=5, stop_after=10):
            notes += 1
            received.extend(json.loads(note.payload))
            if len(received) >= 40:
                break
    engine.dispose()
    assert notes >= 3, "the messages should need several payloads"
    assert [m["data"]["n"] for m in received] == list(range(40))


def test_the_listener_delivers_reconnects_and_stops_at_once(fresh_pg_url: str) -> None:
    """PgListener hands every NOTIFY to the hub, comes back after its backend is killed (a
    failover looks the same from here), and stops without waiting out any polling interval:
    every central's shutdown and every test app's teardown wait for it."""
    import psycopg

    from app.central.core.hub import LiveHub
    from app.central.live import bridge
    from app.central.live.service import CHANNEL

    class Recorder(LiveHub):
        def __init__(self) -> None:
            super().__init__()
            self.got: list[dict[str, Any]] = []

        def deliver(self, messages: list[dict[str, Any]]) -> None:
            self.got.extend(messages)

    def delivered(n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m.get("n") == n for m in hub.got):
                return True
            time.sleep(0.02)
        return False

    hub = Recorder()
    conninfo = bridge.libpq_conninfo(fresh_pg_url)
    listener = bridge.PgListener(conninfo, hub)
    listener.start()
    try:
        assert listener.connected.wait(10), "never started LISTENing"
        with psycopg.connect(conninfo, autocommit=True) as other:
            other.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps([{"n": 1}])))
            assert delivered(1, 2.0), hub.got
            killed = other.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND query LIKE 'LISTEN%%'"
            ).fetchone()
            assert killed == (1,)
            # Until it has reconnected a NOTIFY may go unheard (not replayed, by design):
            # repeat it until it arrives.
            deadline = time.monotonic() + 15
            while not delivered(2, 0.3):
                assert time.monotonic() < deadline, "never heard again after its backend died"
                other.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps([{"n": 2}])))
    finally:
        listener.stop()
    assert not listener._thread.is_alive()
    # Stopped while idle, at three moments of any polling interval the old loop had (1 s):
    # each stop takes a moment, not what is left of an interval.
    for pause in (0.2, 0.45, 0.7):
        idle = bridge.PgListener(conninfo, hub)
        idle.start()
        assert idle.connected.wait(10)
        time.sleep(pause)
        started = time.monotonic()
        idle.stop()
        stopped_in = time.monotonic() - started
        assert not idle._thread.is_alive()
        assert stopped_in < 0.25, f"stop after {pause}s idle took {stopped_in:.2f}s"

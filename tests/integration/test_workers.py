"""``parking-central serve --workers 2`` on PostgreSQL: both processes serve, /metrics counts
the requests of all of them whichever one answers the scrape, SIGTERM still says 1001."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.central.db import Database
from support.pg import free_port
from support.waiting import wait_until
from tests.conftest import PASSWORD, build_world, event_body, make_settings

CLI = [sys.executable, "-m", "app.central.cli"]


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _sum(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_workers_share_metrics_and_shut_down_gracefully(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    database = Database(make_settings(tmp_path, fresh_pg_url))
    with database.session() as db:
        world = build_world(db, capacity=100)
    database.dispose()
    env = {
        **os.environ,
        "PARKING_DATABASE_URL": fresh_pg_url,
        "PARKING_DATA_DIR": str(tmp_path),
        "PARKING_LOG_JSON": "false",
        "PARKING_CAMERA_RATE_PER_S": "10000",
        "PARKING_CAMERA_BURST": "10000",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: _ready(base), timeout=60, what="two workers to serve")
        pids: set[int] = set()

        def two_workers_seen() -> bool:
            pids.update(_worker_pids(server.pid))
            return len(pids) == 2

        wait_until(two_workers_seen, timeout=30, what="two worker processes")
        sent = 20
        for i in range(sent):  # a new connection each: the kernel spreads them over workers
            with httpx.Client(base_url=base, timeout=10) as http:
                answer = http.post(
                    "/api/v1/events",
                    json=event_body("lane-in", f"51F-{i:03d}.00"),
                    headers={"X-API-Key": world.entry_key},
                )
                assert answer.status_code == 200, answer.text
        for _ in range(6):  # whichever worker answers, it counts everyone's requests
            with httpx.Client(base_url=base, timeout=10) as http:
                text = http.get("/metrics").text
            assert _sum(text, "parking_events_ingested_total", result="accepted") == sent
            assert (
                _sum(text, "parking_http_requests_total", route="/api/v1/events", status="200")
                == sent
            )
            assert re.search(r"^parking_open_sessions\{lot=\"lot-a\"\} 20\.0$", text, re.M)

        token = httpx.post(
            f"{base}/api/v1/auth/token", data={"username": "guard", "password": PASSWORD}
        ).json()["access_token"]
        with connect(f"ws://127.0.0.1:{port}/api/v1/live?token={token}") as ws:
            assert '"hello"' in str(ws.recv(timeout=5))
            server.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                _drain(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _drain(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=10)


def _worker_pids(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.update(int(c) for c in (task / "children").read_text().split())
    return {c for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()}


def test_workers_need_postgresql(tmp_path: Path) -> None:
    env = {**os.environ, "PARKING_DATA_DIR": str(tmp_path)}
    env.pop("PARKING_DATABASE_URL", None)
    done = subprocess.run(
        [*CLI, "serve", "--workers", "2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr

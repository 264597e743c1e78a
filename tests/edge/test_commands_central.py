"""The command channel against the real central process: a guard's "open" reaches the lane's
relay once, central learns it pulsed, and a lane without its agent is refused at once."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from app.contract import CameraDirection
from app.edge.agent import EdgeRuntime, Lane, RuntimeSettings
from app.edge.gate import FileRelay, read_relay_file
from tests.edge.conftest import Central, wait_until

PASSWORD = "commands-test-password"  # a throwaway operator of a throwaway central


def guard_headers(central: Central) -> dict[str, str]:
    return central.admin_headers("commands-admin", PASSWORD)


def test_a_guards_open_pulses_the_lanes_relay_once_and_central_hears_it(
    central: Central, tmp_path: Path
) -> None:
    headers = guard_headers(central)
    relay = FileRelay(tmp_path / "relay.jsonl", camera_id="edge-out")
    runtime = EdgeRuntime.build(
        RuntimeSettings(
            central_url=central.url,
            data_dir=tmp_path / "edge",
            heartbeat_interval_s=3600,
            commands_wait_s=3,  # short: central sees the lane offline soon after it stops
        ),
        [Lane("edge-out", CameraDirection.EXIT, central.keys["edge-out"])],
        relays={"edge-out": relay},
    )
    runtime.start()
    try:
        wait_until(lambda: _listening(central, "edge-out"), timeout=15, what="the first poll")
        command = _open(central, headers, "edge-out")
        issued = time.monotonic()
        assert command["status"] in ("pending", "delivered"), command
        wait_until(
            lambda: _status(central, headers, command["id"]) == "pulsed",
            timeout=10,
            what="central to hear of the pulse",
        )
        took = time.monotonic() - issued
    finally:
        runtime.close()
        relay.close()
    causes = [r["cause"] for r in read_relay_file(tmp_path / "relay.jsonl")]
    assert causes == [f"command:{command['id']}"]
    assert took < 5, f"the open took {took:.1f}s to be confirmed"

    # The agent is gone: central refuses the next open at once instead of queueing it.
    wait_until(
        lambda: _open(central, headers, "edge-out")["status"] == "failed",
        timeout=15,
        what="central to see the lane offline",
        interval=1.0,
    )


def _listening(central: Central, camera_id: str) -> bool:
    """Central noted a poll of the lane (it refuses commands for a lane nobody polls)."""
    db = sqlite3.connect(central.data_dir / "parking.db", timeout=30)
    try:
        row = db.execute(
            "SELECT commands_poll_until FROM cameras WHERE id = ?", (camera_id,)
        ).fetchone()
    finally:
        db.close()
    return row is not None and row[0] is not None


def _open(central: Central, headers: dict[str, str], camera_id: str) -> dict[str, str]:
    response = httpx.post(
        f"{central.url}/api/v1/cameras/{camera_id}/open",
        json={"reason": "test: open by hand"},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 202, response.text
    body: dict[str, str] = response.json()
    return body


def _status(central: Central, headers: dict[str, str], command_id: str) -> str:
    response = httpx.get(f"{central.url}/api/v1/commands/{command_id}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])

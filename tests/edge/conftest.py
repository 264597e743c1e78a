"""Fixtures for the edge tests: the real central process, a systemd notify socket, plates.

``central`` starts ``parking-central serve`` (support/central.py) on a free port with its own
SQLite database (migrate + create-camera first) and can stop, kill and restart it on the same port.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from support.central import BIN, CentralProcess
from support.pg import free_port
from support.shared import plates_root
from support.waiting import wait_until
from tests.edge.helpers import edge_config, edge_toml

__all__ = ["BIN", "PLATES", "Central", "NotifySocket", "free_port", "wait_until"]

REPO = Path(__file__).resolve().parents[2]
PLATES = plates_root() / "openalpr-us"


class Central(CentralProcess):
    """A real central process with SQLite under ``data_dir`` (support/central.py)."""

    def create_camera(self, camera_id: str, direction: str, lot: str = "lot-edge") -> str:
        return super().create_camera(camera_id, direction, lot)

    def rows(self, camera_id: str | None = None) -> list[tuple[UUID, str, str]]:
        """(event_id, received_at, plate) of every stored event, in insertion order."""
        db = sqlite3.connect(self.data_dir / "parking.db", timeout=30)
        try:
            query = "SELECT event_id, received_at, plate FROM plate_events"
            args: tuple[str, ...] = ()
            if camera_id:
                query += " WHERE camera_id = ?"
                args = (camera_id,)
            # event_id is stored as 32 hex chars or the canonical form; UUID() reads both.
            return [
                (UUID(str(r[0])), str(r[1]), str(r[2]))
                for r in db.execute(query + " ORDER BY rowid", args)
            ]
        finally:
            db.close()

    def event_ids(self, camera_id: str | None = None) -> list[UUID]:
        return [row[0] for row in self.rows(camera_id)]

    def admin_headers(self, name: str, password: str) -> dict[str, str]:
        """A bearer header of admin ``name`` (created unless it exists: one per module)."""
        made = subprocess.run(
            [str(BIN / "parking-central"), "create-user", name, "--role", "admin"],
            input=password + "\n",
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert made.returncode == 0 or "exists" in made.stderr, made.stderr
        response = httpx.post(
            self.url + "/api/v1/auth/token",
            data={"username": name, "password": password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    data_dir = tmp_path_factory.mktemp("central")
    server = Central(data_dir=data_dir, port=free_port())
    server.cli("migrate")
    server.create_camera("edge-in", "entry")
    server.create_camera("edge-out", "exit")
    server.start()
    yield server
    server.stop()


def write_lane_config(
    tmp_path: Path,
    central: Central,
    pictures: Path,
    *,
    camera: str = "edge-in",
    **sections: Mapping[str, object],
) -> Path:
    """``edge.toml`` for one entry lane replaying ``pictures`` into ``central``, its data under
    ``tmp_path/edge`` and the camera's key in ``tmp_path/key``; ``sections`` add or override
    keys, e.g. ``source={"limit": 6}`` or ``reader={"kind": "litert"}``."""
    key = tmp_path / "key"
    key.write_text(central.keys[camera] + "\n")
    lane: dict[str, Mapping[str, object]] = {
        "camera": {"id": camera, "api_key": None, "api_key_file": key},
        "central": {"url": central.url},
        "source": {"path": pictures, "fps": 0, "frames_per_image": 3},
        "aggregate": {"min_agreeing": 3, "cooldown_s": 0},
        "outbox": {"dir": tmp_path / "edge", "snapshot_max_side": 640},
        "gate": {"deadline_s": 10},
        "heartbeat": {"interval_s": 0.5},
        "metrics": {"port": 0},
    }
    for name, values in sections.items():
        lane[name] = {**lane.get(name, {}), **values}
    path = tmp_path / "edge.toml"
    path.write_text(edge_toml(edge_config(**lane)))
    return path


class NotifySocket:
    """The systemd side of sd_notify: a datagram socket the edge reports READY=1 to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_for(self, message: str, timeout: float = 20.0) -> list[str]:
        self.sock.settimeout(timeout)
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            seen.append(data)
            if message in data.split("\n"):
                return seen
        raise AssertionError(f"no {message!r} on NOTIFY_SOCKET within {timeout}s; saw {seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    # AF_UNIX paths are limited to ~108 bytes; pytest's tmp_path can be longer.
    short = Path("/tmp") / f"edge-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    sock = NotifySocket(short)
    yield sock
    sock.close()
    short.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def plates_dir() -> Path:
    assert PLATES.is_dir(), f"the plate images belong at {PLATES} (shared/ beside the repo)"
    return PLATES

"""Fixtures for the edge tests: the real central process, a systemd notify socket, plates.

``central`` starts ``parking-central serve`` as a subprocess on a free port with its own SQLite
database (migrate + create-camera first) and can stop, kill and restart it on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from tests.support.pg import free_port
from tests.support.shared import plates_root
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLATES = plates_root() / "openalpr-us"


@dataclass
class Central:
    """A real central process with SQLite under ``data_dir``."""

    data_dir: Path
    port: int
    keys: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARKING_")}
        env["PARKING_DATA_DIR"] = str(self.data_dir)
        return env

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "parking-central"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"parking-central {args} failed: {result.stderr}"
        return result.stdout.strip()

    def create_camera(self, camera_id: str, direction: str, lot: str = "lot-edge") -> str:
        key = self.cli("create-camera", camera_id, "--lot", lot, "--direction", direction)
        self.keys[camera_id] = key
        return key

    def start(self) -> None:
        assert self.process is None, "central already running"
        log = (self.data_dir / "central.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(BIN / "parking-central"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self.is_up, timeout=30, what=f"central on port {self.port}")

    def is_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"central exited with {self.process.returncode}:\n"
                + (self.data_dir / "central.log").read_text()[-3000:]
            )
        try:
            return httpx.get(self.url + "/api/health/live", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

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

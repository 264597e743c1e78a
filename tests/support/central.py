"""The real central process: ``parking-central serve`` as a subprocess on a port of its own,
with its own data directory (SQLite there unless ``env_extra`` names another database).

The edge and browser suites build their ``Central`` on this one; it can stop, kill and restart
the process on the same port, and runs the CLI (migrate, create-camera, ...) with the same
environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.waiting import wait_until

BIN = Path(sys.executable).parent


@dataclass
class CentralProcess:
    data_dir: Path
    port: int
    keys: dict[str, str] = field(default_factory=dict)
    env_extra: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = 15
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / "central.log"

    @property
    def env(self) -> dict[str, str]:
        """The test runner's environment without its PARKING_* settings, plus this central's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARKING_")}
        env["PARKING_DATA_DIR"] = str(self.data_dir)
        env.update(self.env_extra)
        return env

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """``parking-central ARGS`` with this central's settings; its stdout, stripped."""
        result = subprocess.run(
            [str(BIN / "parking-central"), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"parking-central {args} failed: {result.stderr}"
        return result.stdout.strip()

    def create_camera(self, camera_id: str, direction: str, lot: str) -> str:
        """Registers a camera through the CLI and keeps its API key in ``keys``."""
        key = self.cli("create-camera", camera_id, "--lot", lot, "--direction", direction)
        self.keys[camera_id] = key
        return key

    def start(self) -> None:
        assert self.process is None, "central already running"
        with self.log.open("ab") as log:
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
        wait_until(self.is_up, timeout=30, what=f"central on port {self.port}")

    def is_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"central exited with {self.process.returncode}:\n" + self.log.read_text()[-3000:]
            )
        try:
            return httpx.get(self.url + "/api/health/live", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a graceful shutdown), or SIGKILL with ``kill``; no-op when not running."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

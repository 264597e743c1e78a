"""The real central process: ``parking-central serve`` as a subprocess on a port of its own,
with its own data directory (SQLite there unless ``env_extra`` names another database).

The one launcher of the tests: the edge, browser, hostile/fuzz and load-balancer suites build
on it. It can stop, kill and restart the process on the same port, and runs the CLI (migrate,
create-camera, ...) with the same environment. With ``tls`` it serves HTTPS as the cluster
runs it (the certificate in ``env_extra``) and is dialled by ``tls_name``.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.waiting import wait_until

BIN = Path(sys.executable).parent


@dataclass
class CentralProcess:
    data_dir: Path
    port: int
    keys: dict[str, str] = field(default_factory=dict)
    env_extra: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = 15
    process: subprocess.Popen[bytes] | None = None
    name: str = "central"
    log_file: Path | None = None  # default: central.log in ``data_dir``
    # Up once this answers 200: ``/api/health/ready`` also waits for the database.
    up_path: str = "/api/health/live"
    # HTTPS with a client certificate (what nginx shows), dialled by the certificate's name.
    tls: ssl.SSLContext | None = None
    tls_name: str = "localhost"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.tls_name}:{self.port}" if self.tls else f"http://{self.address}"

    @property
    def log(self) -> Path:
        return self.log_file or self.data_dir / "central.log"

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
        assert not self.running(), f"{self.name} already running"
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
        wait_until(self.is_up, timeout=30, what=f"{self.name} on port {self.port} (log {self.log})")

    def is_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n"
                + self.log.read_text()[-3000:]
            )
        verify = self.tls if self.tls is not None else True  # httpx takes no None
        try:
            answer = httpx.get(self.url + self.up_path, timeout=2, verify=verify)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Power loss of the process: SIGKILL, no graceful shutdown."""
        self.stop(kill=True)

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

"""SIGTERM to ``parking-central serve``: live clients are told 1001 (going away), the process
runs its shutdown and exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from support.pg import free_port


def drain(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=10)


def test_sigterm_closes_websockets_with_1001_and_shuts_down(tmp_path: Path) -> None:
    env = {**os.environ, "PARKING_DATA_DIR": str(tmp_path), "PARKING_LOG_JSON": "false"}
    cli = [sys.executable, "-m", "app.central.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*cli, "create-user", "guard", "--role", "guard"],
        env=env,
        check=True,
        input=b"guard-password\n",
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "central did not start"
            time.sleep(0.1)
        token = httpx.post(
            f"{base}/api/v1/auth/token", data={"username": "guard", "password": "guard-password"}
        ).json()["access_token"]
        with connect(f"ws://127.0.0.1:{port}/api/v1/live?token={token}") as ws:
            assert '"hello"' in str(ws.recv(timeout=5))
            server.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                drain(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
        # uvicorn finishes its graceful shutdown, then re-raises the signal: for systemd that
        # is a clean stop of a unit it asked to stop.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        assert server.stderr is not None
        assert "central stopped" in server.stderr.read().decode()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

"""``make demo``'s command as a new user runs it: the demo lot with its lanes and accounts, the
simulated lanes feeding central and holding their command channel (a guard's open pulses),
and Ctrl-C stopping everything cleanly, without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from support.pg import free_port
from support.waiting import wait_until

BIN = Path(sys.executable).parent


def test_demo_serves_lanes_that_obey_a_guard_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKING_")}
    env["PARKING_DATA_DIR"] = str(tmp_path / "data")
    env["PARKING_SHARED_DIR"] = str(tmp_path / "no-pictures")  # the simulated lanes only
    out = (tmp_path / "demo.log").open("wb")
    demo = subprocess.Popen(
        [str(BIN / "parking-central"), "demo", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        creds_file = tmp_path / "data" / "demo-credentials.json"
        wait_until(creds_file.exists, timeout=60, what="the demo's credentials")
        creds = json.loads(creds_file.read_text())
        assert set(creds["users"]) == {"admin", "manager", "guard", "cashier"}
        assert set(creds["cameras"]) == {"gate-1-in", "gate-1-out", "gate-2-in", "gate-2-out"}

        def up() -> bool:
            try:
                return httpx.get(f"{url}/api/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, what="central")
        guard = httpx.post(
            f"{url}/api/v1/auth/token",
            data={"username": "guard", "password": creds["users"]["guard"]["password"]},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {guard}"}

        def open_gate() -> dict[str, str]:
            return dict(
                httpx.post(
                    f"{url}/api/v1/cameras/gate-1-out/open",
                    json={"reason": "demo: visitor"},
                    headers=headers,
                ).json()
            )

        # The simulated lane connects its command channel within seconds.
        command = open_gate()
        deadline = time.monotonic() + 30
        while command["status"] == "failed" and time.monotonic() < deadline:
            time.sleep(1)
            command = open_gate()

        def pulsed() -> bool:
            answer = httpx.get(f"{url}/api/v1/commands/{command['id']}", headers=headers)
            return bool(answer.json()["status"] == "pulsed")

        wait_until(pulsed, timeout=20, what="the demo lane pulses the guard's open")
        events = httpx.get(f"{url}/api/v1/events", headers=headers).json()
        assert events, "the simulated lanes sent no event"
    finally:
        demo.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        code = demo.wait(timeout=60)
        out.close()
    log = (tmp_path / "demo.log").read_text()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "demo stopped" in log

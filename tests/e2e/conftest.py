"""Browser tests of the operators' dashboard: the real central process (SQLite in a temp dir),
events posted through the real HTTP API with a camera key as the edge would, and Debian's
Chromium driven by Playwright (never a downloaded browser).

Screenshots land in ``test-output/e2e/`` (git-ignored). Without Chromium or Playwright the
tests are skipped, unless ``PARKING_E2E_REQUIRED=1`` (as ``make test-e2e`` sets) makes that a
failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.central import BIN, CentralProcess
from support.pg import free_port
from support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("PARKING_E2E_OUTPUT", REPO / "test-output" / "e2e"))
CHROMIUM = os.environ.get("PARKING_E2E_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "e2e-password-42"
LOT = "lot-e2e"
USERS = {"guard": "guard", "manager": "manager", "admin": "admin"}
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def jpeg(text: str) -> bytes:
    """A small lane snapshot with the plate written on it."""
    import cv2
    import numpy as np

    image = np.full((240, 320, 3), (70, 80, 90), dtype=np.uint8)
    cv2.rectangle(image, (40, 90), (280, 150), (255, 255, 255), -1)
    cv2.putText(image, text, (50, 132), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 2)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded.tobytes())


@dataclass
class Central(CentralProcess):
    """``parking-central serve`` (support/central.py) with its own SQLite data directory,
    and the operators' and cameras' HTTP calls the screens need."""

    env_extra: dict[str, str] = field(
        default_factory=lambda: {
            "PARKING_LOGIN_ATTEMPTS_PER_MIN": "1000",
            "PARKING_LOG_LEVEL": "WARNING",
        }
    )
    stop_timeout_s: float = 25
    _tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, user: str) -> dict[str, str]:
        if user not in self._tokens:
            response = httpx.post(
                self.url + "/api/v1/auth/token",
                data={"username": user, "password": PASSWORD},
                timeout=10,
            )
            response.raise_for_status()
            self._tokens[user] = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._tokens[user]}"}

    def api(self, method: str, path: str, user: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, self.url + path, headers=self.headers(user), timeout=10, **kwargs
        )

    def post_event(
        self,
        camera_id: str,
        plate: str,
        *,
        at: datetime | None = None,
        confidence: float = 0.93,
        snapshot: bool = True,
        vehicle_type: str = "car",
    ) -> httpx.Response:
        """One event as the edge sends it: its own id, the camera's key, a JPEG snapshot."""
        body: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "camera_id": camera_id,
            "captured_at": (at or datetime.now(UTC)).isoformat(),
            "plate": plate,
            "confidence": confidence,
            "vehicle_type": vehicle_type,
        }
        if snapshot:
            body["snapshot_b64"] = base64.b64encode(jpeg(plate)).decode()
        return httpx.post(
            self.url + "/api/v1/events",
            json=body,
            headers={"X-API-Key": self.keys[camera_id]},
            timeout=10,
        )

    def heartbeat(self, camera_id: str, **figures: Any) -> None:
        body = {"sent_at": datetime.now(UTC).isoformat(), **figures}
        response = httpx.post(
            f"{self.url}/api/v1/cameras/{camera_id}/heartbeat",
            json=body,
            headers={"X-API-Key": self.keys[camera_id]},
            timeout=10,
        )
        assert response.status_code == 204, response.text

    def add_camera(self, camera_id: str, direction: str, name: str = "") -> str:
        """Registers a camera through the admin API (as the Cameras screen does); keeps its key."""
        made = self.api(
            "POST",
            "/api/v1/cameras",
            "admin",
            json={"id": camera_id, "lot_id": LOT, "direction": direction, "name": name},
        )
        assert made.status_code == 201, made.text
        key: str = made.json()["api_key"]
        self.keys[camera_id] = key
        return key


@dataclass
class LaneAgent:
    """A real lane agent: ``parking-edge simulate`` with no synthetic traffic (``--count 0``),
    holding each lane's command long poll to central, its relays recording every pulse as a JSON
    line in ``relay_file`` (``{"at", "unix", "seconds", "cause", "camera"}``, cause
    ``command:<id>`` or ``event:<id>``)."""

    process: subprocess.Popen[bytes]
    relay_file: Path
    log: Path
    metrics_port: int
    cameras: tuple[str, ...]

    def pulses(self) -> list[dict[str, Any]]:
        if not self.relay_file.exists():
            return []
        lines = self.relay_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def pulse_for(self, cause: str) -> dict[str, Any] | None:
        return next((p for p in self.pulses() if p.get("cause") == cause), None)

    def wait_for_pulse(self, cause: str, timeout: float = 10) -> dict[str, Any]:
        wait_until(lambda: self.pulse_for(cause), timeout=timeout, what=f"a relay pulse {cause}")
        found = self.pulse_for(cause)
        assert found is not None
        return found

    def channels_up(self) -> bool:
        """Each lane's last command poll succeeded (its agent's own metric)."""
        self.check_running()
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.TransportError:
            return False
        up = {
            m.group(1)
            for m in re.finditer(
                r'^parking_edge_command_channel_up\{camera="([^"]+)"\} 1\.0$', text, re.M
            )
        }
        return set(self.cameras) <= up

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"parking-edge exited with {self.process.returncode}:\n"
                + self.log.read_text(errors="replace")[-3000:]
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_lane_agent(
    central: Central, *, entry: str, exit_: str, workdir: Path, commands_wait_s: int = 5
) -> LaneAgent:
    """Starts ``parking-edge simulate`` for two lanes of ``central`` and waits until both hold
    their command poll (central fails at once a command to a lane nobody listens on)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "edge.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKING_")}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                str(BIN / "parking-edge"), "simulate",
                "--central", central.url,
                "--entry-key", central.keys[entry], "--entry-camera", entry,
                "--exit-key", central.keys[exit_], "--exit-camera", exit_,
                "--data-dir", str(workdir / "data"),
                "--relay-file", str(workdir / "relay.jsonl"),
                "--rate", "1", "--count", "0",  # no synthetic vehicles: the tests make their own
                "--commands-wait-s", str(commands_wait_s),
                "--heartbeat-interval-s", "5",
                "--metrics-port", str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    agent = LaneAgent(process, workdir / "relay.jsonl", log, port, (entry, exit_))
    try:
        wait_until(
            agent.channels_up, timeout=30, what="the lane agent's command polls", interval=0.2
        )
    except BaseException:
        agent.stop()
        raise
    return agent


@pytest.fixture(scope="session")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    server = Central(data_dir=tmp_path_factory.mktemp("central"), port=free_port())
    server.cli("migrate")
    for user, role in USERS.items():
        server.cli("create-user", user, "--role", role, stdin=PASSWORD + "\n")
    for camera_id, direction in (("gate-in", "entry"), ("gate-out", "exit")):
        server.create_camera(camera_id, direction, LOT)
    server.start()
    tariff = {
        "lot_id": LOT,
        "vehicle_type": "car",
        "free_minutes": 15,
        "hourly_rate": 20_000,
        "daily_cap": 150_000,
        "overnight_fee": 0,  # keeps fees independent of the hour the suite runs at
    }
    assert server.api("PUT", "/api/v1/tariffs", "manager", json=tariff).status_code == 200
    # The edge captured two more than central has: one still in its outbox, one lost.
    server.heartbeat("gate-in", captured_total=2, delivered_total=0, outbox_depth=1)
    server.heartbeat("gate-out", captured_total=0, delivered_total=0)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    required = os.environ.get("PARKING_E2E_REQUIRED") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (make test-e2e installs it)")
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        if required:
            pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM} (make test-e2e installs Debian's)")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # Playwright gives every launch a fresh temporary --user-data-dir of its own.
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, central: Central) -> Iterator[Any]:
    """A fresh browser context per test (own storage); uncaught page errors fail the test."""
    context = browser.new_context(
        base_url=central.url, viewport={"width": 1440, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Any, name: str) -> Path:
    """Saves the screen, after checking it shows no error of its own (a failed load)."""
    failures = page.locator("#view > .screen > p.error").all_inner_texts()
    assert not failures, f"{name}: the screen shows errors {failures}"
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Any, user: str) -> None:
    page.goto("/")
    page.fill("#login input[name=username]", user)
    page.fill("#login input[name=password]", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#link[data-state=live]")
    page.wait_for_selector("#view[data-view]")


def logout(page: Any) -> None:
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")

"""The demo's cashier: a person at the exit booth and at the pay station, played through the
operators' real HTTP API with the demo's ``cashier`` account.

* A held exit (``session_held``: the fee is unpaid, the barrier closed) is paid after a short
  wait, by cash, card or transfer; central opens that lane through its command channel.
* Now and then a vehicle inside pays ahead at the pay station and then leaves without a stop,
  within the lot's grace period.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

# Seconds a driver waits at a held exit before the cashier has taken the money.
PAY_DELAY_S = (3.0, 12.0)
# Share of vehicles inside that pay ahead at the pay station (checked once per vehicle).
PREPAY_SHARE = 0.15
METHODS = ("cash", "transfer", "card")
METHOD_WEIGHTS = (0.6, 0.25, 0.15)


@dataclass
class DemoCashier:
    url: str
    username: str
    password: str
    rng: random.Random = field(default_factory=random.Random)
    interval_s: float = 2.0
    stop: threading.Event = field(default_factory=threading.Event)
    paid: int = 0
    _token: str | None = None
    _due_at: dict[int, float] = field(default_factory=dict)
    _seen: set[int] = field(default_factory=set)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-cashier", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _headers(self, client: httpx.Client) -> dict[str, str]:
        if self._token is None:
            response = client.post(
                "/api/v1/auth/token", data={"username": self.username, "password": self.password}
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.wait(self.interval_s):
                try:
                    self.round(client)
                except httpx.HTTPStatusError as error:
                    if error.response.status_code == 401:
                        self._token = None  # expired: log in again
                    else:
                        log.warning("demo cashier: %s", error)
                except httpx.HTTPError:
                    pass  # central not up yet, or going down

    def round(self, client: httpx.Client) -> None:
        response = client.get(
            "/api/v1/sessions",
            params={"status": "open", "limit": 500},
            headers=self._headers(client),
        )
        response.raise_for_status()
        now = time.monotonic()
        for session in response.json():
            sid = int(session["id"])
            if session.get("exit_held_at"):
                due_at = self._due_at.setdefault(sid, now + self.rng.uniform(*PAY_DELAY_S))
                if now >= due_at:
                    self._pay(client, sid, at_lane=True)
            elif sid not in self._seen:
                self._seen.add(sid)
                if self.rng.random() < PREPAY_SHARE:
                    self._due_at[sid] = now + self.rng.uniform(20.0, 60.0)
            elif sid in self._due_at and now >= self._due_at[sid]:
                self._pay(client, sid, at_lane=False)
        if len(self._seen) > 10_000:
            self._seen.clear()

    def _pay(self, client: httpx.Client, session_id: int, *, at_lane: bool) -> None:
        self._due_at.pop(session_id, None)
        method = self.rng.choices(METHODS, METHOD_WEIGHTS)[0]
        body: dict[str, Any] = {"method": method}
        if method != "cash":
            body["reference"] = f"DEMO-{self.rng.randrange(10**8):08d}"
        response = client.post(
            f"/api/v1/sessions/{session_id}/payments", json=body, headers=self._headers(client)
        )
        if response.status_code == 409:
            return  # nothing due (free by now, or paid by someone else)
        response.raise_for_status()
        self.paid += 1
        log.info(
            "demo cashier: session %d paid %s %s",
            session_id,
            method,
            "at the exit" if at_lane else "at the pay station",
        )

"""The real Prometheus and Alertmanager from Debian, started by hand in a temp dir on free
loopback ports (no systemd here), and a webhook receiver that records what Alertmanager sends.

``alert_rules(for_overrides)`` gives the project's rules with shortened ``for:`` durations, as
the lab inventory shortens them through ``prometheus_alert_for_overrides``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "prometheus" / "rules" / "parking-alerts.yml"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def require_binaries(*names: str) -> None:
    """Skip when a binary is missing, unless the make target asked for the suite (then fail)."""
    import os

    missing = [n for n in names if shutil.which(n) is None and not Path(n).exists()]
    if missing:
        message = f"missing {missing}: run scripts/ensure-monitoring.sh"
        if os.environ.get("PARKING_MONITORING_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)


def alert_rules(for_overrides: dict[str, str]) -> dict[str, Any]:
    """The project's alert rules with the given alerts' ``for:`` replaced."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in for_overrides:
                rule["for"] = for_overrides[rule["alert"]]
    return rules


@dataclass
class Delivery:
    """One alert of one webhook notification, stamped on arrival."""

    at: float
    receiver: str
    status: str
    alertname: str
    labels: dict[str, str]


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: every alert of every POST, with its arrival time."""

    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.monotonic()
                with hook.lock:
                    for alert in body["alerts"]:
                        hook.deliveries.append(
                            Delivery(
                                at=now,
                                receiver=str(body["receiver"]),
                                status=str(alert["status"]),
                                alertname=str(alert["labels"].get("alertname", "")),
                                labels=dict(alert["labels"]),
                            )
                        )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def matching(
        self, alertname: str, status: str, *, after: float = 0.0, receiver: str | None = None
    ) -> list[Delivery]:
        with self.lock:
            return [
                d
                for d in self.deliveries
                if d.alertname == alertname
                and d.status == status
                and d.at >= after
                and (receiver is None or d.receiver == receiver)
            ]

    def first(
        self,
        alertname: str,
        status: str,
        *,
        after: float,
        timeout: float,
        receiver: str | None = None,
    ) -> Delivery:
        """Wait for the first matching delivery that arrived at or after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(alertname, status, after=after, receiver=receiver)
            if found:
                return found[0]
            time.sleep(0.05)
        with self.lock:
            seen = sorted({(d.alertname, d.status, d.receiver) for d in self.deliveries})
        raise AssertionError(
            f"no {status} {alertname} reached the webhook within {timeout}s; it received {seen}"
        )


class Process:
    """A binary started in the background with its output in a log file."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 30) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} not ready in {timeout}s: {self.log.read_text()[-3000:]}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def answers(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    return ready

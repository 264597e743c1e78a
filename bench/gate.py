"""The lane's loop, measured: gate decisions, manual opens, held and paid exits, expiry.

    .venv/bin/python bench/gate.py [--seconds 60] [--pairs 2] [--rate 2] [--opens-per-s 1]
    .venv/bin/python bench/gate.py --lab [--crash central1]   # through the lab's VIP

Local mode starts central (``parking-central serve`` on SQLite in a temporary directory) and,
per lane pair (an entry and an exit lane), one real edge agent: ``parking-edge simulate`` with
its outbox, uploader, command channel (long poll) and a recording relay (``--relay-file``: one
JSON line per pulse with its cause, ``event:<id>`` or ``command:<id>``). The lot's tariff has no
free minutes, so every exit is held until paid; a cashier here pays each held exit in cash
about a second after it is held (central then opens that lane through the command channel).
Meanwhile operators open random lanes by hand (``POST /cameras/{id}/open``), and every fifth
open is sent with an expiry too short to meet (it must never pulse).

Figures come from the systems' own records: pulse times and causes from the relay files,
capture times and decisions from central's events, command and payment states from central.

* ``decision_p95_ms``: an event's capture (the moment the agent handed it to its outbox and
  uploader) -> its relay pulse, for events central answered ``open``.
* ``manual_open_p95_ms``: the operator's API call -> central's record of the lane's "pulsed".
* ``manual_open_sent`` / ``manual_open_pulsed``: opens meant to succeed; pulsed exactly once.
* ``manual_open_unaccounted``: opens meant to succeed that neither pulsed once nor were
  reported expired or failed (must be 0).
* ``late_commands_executed``: pulses after their command's expiry (must be 0).
* ``duplicate_pulses``: pulses beyond the first for one cause (must be 0).
* ``unpaid_exits_opened``: exits held for payment whose own event pulsed a relay (must be 0).
* ``paid_exits_opened``: payments whose command pulsed the held lane exactly once.

``--lab`` runs the same against the lab (docs/lab.md, up and converged with site.yml): central
through the VIP over TLS (the lab's CA), the agents on this machine, an admin made for the run
with ``parking-central-admin`` on a central host. ``--crash HOST`` crashes that central host
(``lab/lab crash``) a third into the run while opens are being sent and powers it on again a
third later: no command may pulse twice or after its expiry; opens sent while no central
answered are reported failed or expired, never executed late.
The last line is one JSON object with the figures above.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from support.pg import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOT = "gate-bench"
SHORT_TTL_S = 0.01  # shorter than the transit margin: central sends ttl_ms = 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass
class Central:
    """Central's HTTP API as the operators use it."""

    url: str
    verify: bool | str = True
    password: str = ""
    user: str = "bench-admin"
    _token: str = ""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify, timeout=10)

    def headers(self) -> dict[str, str]:
        if not self._token:
            response = httpx.post(
                f"{self.url}/api/v1/auth/token",
                data={"username": self.user, "password": self.password},
                verify=self.verify,
                timeout=10,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One API call; tried again on a fresh connection while a central fails over."""
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.request(
                    method, f"{self.url}{path}", headers=self.headers(), verify=self.verify,
                    timeout=10, **kw,
                )  # fmt: skip
                if response.status_code not in (502, 503, 504) or time.monotonic() > deadline:
                    return response
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)


def start_local_central(data_dir: Path, port: int, password: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PARKING_")},
        "PARKING_DATA_DIR": str(data_dir),
        "PARKING_LOG_LEVEL": "WARNING",
        "PARKING_CAMERA_RATE_PER_S": "100000",
        "PARKING_CAMERA_BURST": "100000",
        "PARKING_DUTY_INTERVAL_S": "2",
    }
    central = str(BIN / "parking-central")
    subprocess.run([central, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [central, "create-user", "bench-admin", "--role", "admin"],
        env=env, input=f"{password}\n".encode(), check=True, capture_output=True,
    )  # fmt: skip
    log = (data_dir / "central.log").open("ab")
    proc = subprocess.Popen(
        [central, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/api/health/ready").status_code == 200:
                return proc
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"central did not become ready (see {data_dir / 'central.log'})")
        time.sleep(0.2)


@dataclass
class Pair:
    entry: str
    exit: str
    keys: dict[str, str]
    relay_file: Path
    process: subprocess.Popen[bytes] | None = None


def setup_lot(central: Central, pairs: int, run: str) -> list[tuple[str, str, str, str]]:
    """The bench's lot (no free minutes: every exit pays) and its lanes; returns their keys."""
    made = central.call("POST", "/api/v1/lots", json={"id": LOT, "capacity": 1_000_000})
    if made.status_code not in (201, 409):
        made.raise_for_status()
    for vehicle_type in ("car", "unknown"):
        central.call(
            "PUT",
            "/api/v1/tariffs",
            json={"lot_id": LOT, "vehicle_type": vehicle_type, "free_minutes": 0,
                  "hourly_rate": 25_000, "daily_cap": 200_000},
        ).raise_for_status()  # fmt: skip
    lanes = []
    for i in range(pairs):
        keys = []
        for direction in ("in", "out"):
            camera = f"gb-{run}-{i}-{direction}"
            response = central.call(
                "POST",
                "/api/v1/cameras",
                json={"id": camera, "lot_id": LOT,
                      "direction": "entry" if direction == "in" else "exit"},
            )  # fmt: skip
            response.raise_for_status()
            keys.append((camera, response.json()["api_key"]))
        lanes.append((keys[0][0], keys[0][1], keys[1][0], keys[1][1]))
    return lanes


def start_agent(
    pair: Pair, url: str, data_dir: Path, *, rate: float, ca_file: str | None, seed: int
) -> None:
    command = [
        str(BIN / "parking-edge"), "simulate", "--central", url,
        "--entry-camera", pair.entry, "--entry-key", pair.keys[pair.entry],
        "--exit-camera", pair.exit, "--exit-key", pair.keys[pair.exit],
        "--rate", str(rate), "--dwell", "3", "10", "--no-snapshots", "--seed", str(seed),
        "--data-dir", str(data_dir), "--relay-file", str(pair.relay_file),
        "--heartbeat-interval-s", "5",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKING_")}
    if ca_file:
        env["SSL_CERT_FILE"] = ca_file
    log = (data_dir / "agent.log").open("ab")
    pair.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)


@dataclass
class Cashier:
    """Pays every held exit of the bench's lot in cash, about a second after it is held."""

    central: Central
    stop: threading.Event = field(default_factory=threading.Event)
    payments: dict[int, dict[str, Any]] = field(default_factory=dict)  # session -> answer
    errors: int = 0

    def run(self) -> None:
        first_seen: dict[int, float] = {}
        while not self.stop.wait(0.3):
            try:
                response = self.central.call(
                    "GET", "/api/v1/sessions",
                    params={"status": "open", "lot_id": LOT, "limit": 500},
                )  # fmt: skip
                response.raise_for_status()
            except httpx.HTTPError:
                self.errors += 1
                continue
            now = time.monotonic()
            for session in response.json():
                if not session.get("exit_held_at") or session["id"] in self.payments:
                    continue
                if now - first_seen.setdefault(session["id"], now) < 1.0:
                    continue
                paid = self.central.call(
                    "POST", f"/api/v1/sessions/{session['id']}/payments", json={"method": "cash"}
                )
                if paid.status_code == 201:
                    self.payments[session["id"]] = paid.json()
                elif paid.status_code != 409:
                    self.errors += 1


@dataclass
class Opener:
    """Operators opening random lanes by hand; every fifth with an expiry it cannot meet."""

    central: Central
    lanes: list[str]
    per_s: float
    rng: random.Random
    stop: threading.Event = field(default_factory=threading.Event)
    sent: list[tuple[str, float, bool]] = field(default_factory=list)  # (id, unix, meant)
    refused: int = 0

    def run(self) -> None:
        n = 0
        while not self.stop.wait(self.rng.uniform(0.5, 1.5) / self.per_s):
            n += 1
            meant = n % 5 != 0
            body: dict[str, Any] = {"reason": f"bench open {n}"}
            if not meant:
                body["ttl_s"] = SHORT_TTL_S
            lane = self.rng.choice(self.lanes)
            started = time.time()
            try:
                response = self.central.call("POST", f"/api/v1/cameras/{lane}/open", json=body)
            except httpx.HTTPError:
                self.refused += 1
                continue
            if response.status_code != 202:
                self.refused += 1
                continue
            self.sent.append((response.json()["id"], started, meant))


def read_pulses(files: list[Path]) -> list[dict[str, Any]]:
    pulses = []
    for path in files:
        if path.exists():
            pulses += [json.loads(line) for line in path.read_text().splitlines() if line]
    return pulses


def lab_crash(host: str, after_s: float, down_s: float, stop: threading.Event) -> None:
    lab = str(REPO / "lab" / "lab")
    if stop.wait(after_s):
        return
    print(f"bench: crashing {host}", file=sys.stderr, flush=True)
    subprocess.run([lab, "crash", host], cwd=REPO, check=False, capture_output=True)
    stop.wait(down_s)
    print(f"bench: powering {host} on", file=sys.stderr, flush=True)
    subprocess.run([lab, "poweron", host], cwd=REPO, check=False, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="traffic and opens")
    parser.add_argument("--pairs", type=int, default=2, help="lane pairs (entry + exit)")
    parser.add_argument("--rate", type=float, default=1.0, help="events/s per lane pair")
    parser.add_argument("--opens-per-s", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lab", action="store_true", help="through the lab's VIP")
    parser.add_argument("--url", default="https://10.77.0.30", help="--lab: the VIP")
    parser.add_argument("--ca-file", default=str(REPO / ".lab" / "pki" / "ca.crt"))
    parser.add_argument("--crash", metavar="HOST", help="--lab: crash this central meanwhile")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    run = secrets.token_hex(3)
    work = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    server: subprocess.Popen[bytes] | None = None
    if args.lab:
        user, password = f"bench-gate-{run}", secrets.token_urlsafe(18)
        subprocess.run(
            [str(REPO / "lab" / "lab"), "exec", "central1", "parking-central-admin",
             "create-user", user, "--role", "admin"],
            cwd=REPO, input=password + "\n", text=True, check=True, capture_output=True,
            timeout=120,
        )  # fmt: skip
        central = Central(args.url, verify=args.ca_file, password=password, user=user)
    else:
        password = secrets.token_urlsafe(12)
        port = free_port()
        (work / "central").mkdir(parents=True)
        server = start_local_central(work / "central", port, password)
        central = Central(f"http://127.0.0.1:{port}", password=password)

    pairs: list[Pair] = []
    stop = threading.Event()
    try:
        for i, (entry, entry_key, exit_, exit_key) in enumerate(
            setup_lot(central, args.pairs, run)
        ):
            pair = Pair(
                entry, exit_, {entry: entry_key, exit_: exit_key}, work / f"relay-{i}.jsonl"
            )
            (work / f"agent-{i}").mkdir()
            start_agent(
                pair, central.url, work / f"agent-{i}", rate=args.rate,
                ca_file=args.ca_file if args.lab else None, seed=args.seed + i,
            )  # fmt: skip
            pairs.append(pair)
        lanes = [lane for pair in pairs for lane in (pair.entry, pair.exit)]
        time.sleep(3)  # the agents connect their command polls
        cashier = Cashier(central)
        opener = Opener(central, lanes, args.opens_per_s, rng)
        threads = [threading.Thread(target=cashier.run), threading.Thread(target=opener.run)]
        if args.lab and args.crash:
            threads.append(
                threading.Thread(
                    target=lab_crash, args=(args.crash, args.seconds / 3, args.seconds / 3, stop)
                )
            )
        for thread in threads:
            thread.start()
        stop.wait(args.seconds)
        opener.stop.set()
        # The cashier pays the last held exits; then their commands finish.
        time.sleep(5)
        cashier.stop.set()
        time.sleep(3)
        for pair in pairs:
            if pair.process is not None:
                pair.process.send_signal(signal.SIGTERM)
        for pair in pairs:
            if pair.process is not None:
                pair.process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        return report(central, pairs, cashier, opener, args)
    finally:
        stop.set()
        for pair in pairs:
            if pair.process is not None and pair.process.poll() is None:
                pair.process.kill()
        if server is not None:
            server.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=20)


def report(central: Central, pairs: list[Pair], cashier: Cashier, opener: Opener, args: Any) -> int:
    pulses = read_pulses([pair.relay_file for pair in pairs])
    by_cause = Counter(p["cause"] for p in pulses)
    first_pulse: dict[str, float] = {}
    for pulse in sorted(pulses, key=lambda p: p["unix"]):
        first_pulse.setdefault(pulse["cause"], pulse["unix"])
    duplicate_pulses = sum(n - 1 for n in by_cause.values() if n > 1)

    events: list[dict[str, Any]] = []
    commands: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        for lane in (pair.entry, pair.exit):
            offset = 0
            while True:
                page = central.call(
                    "GET", "/api/v1/events",
                    params={"camera_id": lane, "limit": 500, "offset": offset},
                ).json()  # fmt: skip
                events += page
                if len(page) < 500:
                    break
                offset += 500
            for command in central.call(
                "GET", "/api/v1/commands", params={"camera_id": lane, "limit": 500}
            ).json():
                commands[command["id"]] = command

    decision_ms = [
        (first_pulse[f"event:{e['event_id']}"] - parse_time(e["captured_at"])) * 1000
        for e in events
        if e["ack"]["decision"]["action"] == "open" and f"event:{e['event_id']}" in first_pulse
    ]
    opens_expected = sum(1 for e in events if e["ack"]["decision"]["action"] == "open")
    held = [e for e in events if e["ack"]["decision"]["action"] == "hold"]
    unpaid_exits_opened = sum(1 for e in held if f"event:{e['event_id']}" in by_cause)

    late = 0
    for cause, at in first_pulse.items():
        command = commands.get(cause.removeprefix("command:"), {})
        if cause.startswith("command:") and command and at > parse_time(command["expires_at"]):
            late += 1
    meant = [(cid, started) for cid, started, ok in opener.sent if ok]
    short = [cid for cid, _, ok in opener.sent if not ok]
    manual_ms = []
    pulsed = 0
    for cid, started in meant:
        command = commands.get(cid, {})
        if command.get("status") == "pulsed" and by_cause.get(f"command:{cid}") == 1:
            pulsed += 1
            manual_ms.append((parse_time(command["acked_at"]) - started) * 1000)
    short_pulsed = sum(1 for cid in short if f"command:{cid}" in by_cause)
    # An open meant to succeed that did not pulse once must have been reported expired or
    # failed (its lane away for longer than its expiry): none may vanish or stay open.
    unaccounted = sum(
        1
        for cid, _ in meant
        if by_cause.get(f"command:{cid}") != 1
        and commands.get(cid, {}).get("status") not in ("expired", "failed")
    )
    paid_opened = 0
    for answer in cashier.payments.values():
        command = answer.get("command") or {}
        if by_cause.get(f"command:{command.get('id')}") == 1:
            paid_opened += 1
    statuses = Counter(c["status"] for c in commands.values())

    nan = float("nan")
    lines = (
        f"events {len(events)}: open {opens_expected} (pulsed {len(decision_ms)}), "
        f"held {len(held)}",
        f"decision ms: p50 {percentile(decision_ms, 50):.1f}  "
        f"p95 {percentile(decision_ms, 95):.1f}  max {max(decision_ms, default=nan):.1f}",
        f"manual opens: sent {len(meant)} pulsed {pulsed}  p50 {percentile(manual_ms, 50):.1f}"
        f" ms  p95 {percentile(manual_ms, 95):.1f} ms; refused {opener.refused}",
        f"short-expiry opens: {len(short)} sent, {short_pulsed} pulsed (must be 0)",
        f"payments {len(cashier.payments)}: lane opened once {paid_opened}; "
        f"cashier errors {cashier.errors}",
        f"command states: {dict(statuses)}; duplicate pulses {duplicate_pulses}; late {late}",
    )
    print("\n".join(lines))
    figures = {
        "mode": "lab" if args.lab else "local",
        "seconds": args.seconds,
        "pairs": args.pairs,
        "events": len(events),
        "decision_p50_ms": round(percentile(decision_ms, 50), 1),
        "decision_p95_ms": round(percentile(decision_ms, 95), 1),
        "open_decisions": opens_expected,
        "open_decisions_pulsed": len(decision_ms),
        "manual_open_sent": len(meant),
        "manual_open_pulsed": pulsed,
        "manual_open_unaccounted": unaccounted,
        "manual_open_p50_ms": round(percentile(manual_ms, 50), 1),
        "manual_open_p95_ms": round(percentile(manual_ms, 95), 1),
        "short_expiry_sent": len(short),
        "late_commands_executed": late + short_pulsed,
        "duplicate_pulses": duplicate_pulses,
        "unpaid_exits_opened": unpaid_exits_opened,
        "held_exits": len(held),
        "payments": len(cashier.payments),
        "paid_exits_opened": paid_opened,
        "commands_failed": statuses.get("failed", 0),
        "commands_expired": statuses.get("expired", 0),
        "crash": getattr(args, "crash", None),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

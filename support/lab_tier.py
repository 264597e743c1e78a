"""The central tier in the lab under load: the tier's hosts (``Tier``), simulated edge cameras,
the probe, VIP watcher and live-feed observers, the faults and ``run_scenario``.

Shared by ``bench/failover_central.py`` (which prints the figures) and by
``tests/lab/test_central_tier.py`` and ``tests/lab/test_lane_commands.py`` (which assert them);
the bench's docstring describes the scenario.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from app.central.duties import ADVISORY_KEY
from app.edge.agent import synthetic_plate
from app.edge.outbox import Outbox
from support import lab_pki
from support.lab_cli import lab
from support.pg import free_port

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CA = REPO / ".lab" / "pki" / "ca.crt"
CENTRAL_PORT = 8000
SCENARIOS = ("central-crash", "kill9", "lb-crash", "upgrade")
TIER_HOSTS = ("central1", "central2", "lb1", "lb2")


def log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", file=sys.stderr, flush=True)


def sh(host: str, command: str, check: bool = True, timeout: float = 60) -> str:
    return lab("exec", host, "sh", "-c", command, check=check, timeout=timeout)


# A table of the drills' own on a host (common's ruleset is left alone): output rules go here.
NFT_TABLE = (
    "nft add table inet parking_drill && "
    "nft add chain inet parking_drill out '{ type filter hook output priority 0; }'"
)
NFT_DROP_TABLE = "nft delete table inet parking_drill"


def reset_outgoing(host: str, *matches: str) -> None:
    """``host``'s outgoing TCP packets matching any of ``matches`` (nft) get TCP resets, from
    the drills' own table (common's ruleset is left alone); replaces an earlier drill's table.
    Used by bench/alerts_drill.py and the soak (support/lab_soak.py)."""
    rules = " && ".join(
        f"nft add rule inet parking_drill out {match} reject with tcp reset" for match in matches
    )
    sh(host, f"{NFT_DROP_TABLE} 2>/dev/null; {NFT_TABLE} && {rules}")


def stop_resetting(host: str) -> None:
    sh(host, NFT_DROP_TABLE, check=False)


def ca_context() -> ssl.SSLContext:
    """TLS trusting the lab's internal CA only (made by roles/nginx)."""
    return ssl.create_default_context(cafile=str(CA))


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> float:
    """Seconds until ``condition`` held; raises after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):
            if condition():
                return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not true after {timeout:.0f} s")


# -- the tier as the inventory describes it --------------------------------------------------


# The session holding central's duties' lock (app/central/duties.py: a bigint key below 2^32,
# classid 0, objid the key) and how long it has been silent; its central ticks once per duty
# interval (15 s), so silent for longer than three is not running them.
DUTIES_HOLDER = (
    "SELECT host(a.client_addr), extract(epoch FROM clock_timestamp() - a.state_change)::float"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0"
    " AND l.objid = %s::oid AND l.objsubid = 1"
)
DUTIES_SILENT_S = 45.0


@dataclass(frozen=True)
class Tier:
    vip: str
    server_name: str
    active: str
    centrals: dict[str, str]
    lbs: dict[str, str]
    db_hosts: list[str]

    @classmethod
    def from_inventory(cls) -> Tier:
        lb_vars = yaml.safe_load((REPO / "inventory/lab/group_vars/lb/lb.yml").read_text())

        def hosts(pattern: str) -> dict[str, str]:
            rows = (line.split() for line in lab("hosts", pattern).splitlines() if line.strip())
            return {row[0]: row[1] for row in rows}

        return cls(
            vip=str(lb_vars["keepalived_vip"]),
            server_name=str(lb_vars["nginx_server_names"][0]),
            active=str(lb_vars["nginx_central_active_host"]),
            centrals=hosts("central"),
            lbs=hosts("lb"),
            db_hosts=sorted(hosts("db").values()),
        )

    @property
    def url(self) -> str:
        return f"https://{self.vip}"

    def running(self) -> set[str]:
        rows = (line.split() for line in lab("status").splitlines() if line.strip())
        return {row[0] for row in rows if row[-1] == "running"}

    def vip_holders(self) -> list[str]:
        up = self.running()
        return [
            name
            for name in sorted(self.lbs)
            if name in up
            and f" {self.vip}/" in sh(name, "ip -4 -o addr show", check=False, timeout=20)
        ]

    def central_ready(self, central: str) -> bool:
        """/api/health/ready of one central, asked from an lb (only they may reach 8000)."""
        up = self.running()
        prober = next(name for name in sorted(self.lbs) if name in up)
        url = f"https://{self.centrals[central]}:{CENTRAL_PORT}/api/health/ready"
        tls = (  # central wants a client certificate from the internal CA: nginx's own
            "--cacert /etc/nginx/tls/parking-ca.crt --cert /etc/nginx/tls/nginx-upstream.crt"
            " --key /etc/nginx/tls/nginx-upstream.key"
        )
        return sh(
            prober, f"curl -fsS --max-time 2 {tls} {url}", check=False, timeout=20
        ).startswith('{"status":"ready"')

    def release(self, central: str) -> str:
        """The release (wheel checksum) the central's `current` link points at."""
        return sh(central, "readlink /opt/parking-central/current", timeout=20).strip()

    def vip_ready(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/api/health/ready", verify=ca_context(), timeout=3)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def database(self) -> psycopg.Connection[Any]:
        seed = (REPO / ".lab" / "ssh" / "id_ed25519").read_text().rstrip()
        password = hashlib.sha256(f"{seed}:central_db".encode()).hexdigest()
        return psycopg.connect(
            # TLS with a client certificate from the lab's CA, as central dials (roles/patroni).
            lab_pki.admin().libpq(),
            host=",".join(self.db_hosts),
            port=",".join(["5432"] * len(self.db_hosts)),
            dbname="parking",
            user="parking",
            password=password,
            target_session_attrs="read-write",
            connect_timeout=3,
            autocommit=True,
        )

    def duties_holder(self) -> tuple[str, float] | None:
        """The address of the client whose session holds central's duties' lock and the
        seconds that session has been silent (its central ticks every duty interval)."""
        with self.database() as db:
            row = db.execute(DUTIES_HOLDER, (ADVISORY_KEY,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def duties_runner(self) -> str | None:
        """The central that runs the duties now (its lock session ticked lately), if any."""
        holder = self.duties_holder()
        if holder is None or holder[1] > DUTIES_SILENT_S:
            return None
        return next((n for n, a in self.centrals.items() if a == holder[0]), None)

    def admin(self, *args: str, stdin: str | None = None) -> str:
        """parking-central-admin (roles/central) on a central that runs."""
        up = self.running()
        host = next(name for name in sorted(self.centrals) if name in up)
        return lab("exec", host, "parking-central-admin", *args, stdin=stdin, timeout=120)


def converge(playbook: str, *extra: str, limit: tuple[str, ...] = TIER_HOSTS) -> float:
    """ansible-playbook on the tier's hosts (or ``limit``'s patterns); its output goes to
    .lab/failover-central.log."""
    started = time.monotonic()
    log_path = REPO / ".lab" / "failover-central.log"
    with log_path.open("w") as out:
        done = subprocess.run(
            [
                str(VENV_BIN / "ansible-playbook"),
                "-i",
                "inventory/lab",
                playbook,
                "--limit",
                ":".join(limit),
                *extra,
            ],
            cwd=REPO,
            check=False,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"{playbook} exited {done.returncode}; end of {log_path}:\n{tail}")
    return time.monotonic() - started


def bring_up(tier: Tier) -> None:
    missing = [name for name in TIER_HOSTS if name not in tier.running()]
    if missing:
        log(f"booting {missing}")
        lab("up", *missing, timeout=600)
    if tier.vip_ready() and all(tier.central_ready(name) for name in tier.centrals):
        return
    log("converging playbooks/central.yml and playbooks/lb.yml")
    converge("playbooks/central.yml")
    converge("playbooks/lb.yml")
    wait_for(tier.vip_ready, "VIP answers over TLS", 60)


# -- load and observers ----------------------------------------------------------------------


@dataclass
class Cameras:
    entry: tuple[str, str]
    exit: tuple[str, str]
    probe: tuple[str, str]

    @property
    def ids(self) -> list[str]:
        return [self.entry[0], self.exit[0], self.probe[0]]


def make_camera(tier: Tier, camera_id: str, lot: str, direction: str) -> tuple[str, str]:
    """A camera registered on central (parking-central-admin): its id and API key."""
    key = tier.admin("create-camera", camera_id, "--lot", lot, "--direction", direction).strip()
    return camera_id, key


def make_cameras(tier: Tier, run: str) -> Cameras:
    def camera(suffix: str, direction: str) -> tuple[str, str]:
        return make_camera(tier, f"fc-{run}-{suffix}", f"bench-{run}", direction)

    return Cameras(camera("in", "entry"), camera("out", "exit"), camera("probe", "entry"))


class OperatorLogin(httpx.Auth):
    """An operator's login through the VIP that logs in again once half its token's life has
    passed (central's tokens last ``PARKING_JWT_TTL_S``, 30 minutes by default), as a person at
    the dashboard would: a run longer than one token keeps its operators. As ``httpx``'s auth
    it puts a live token on every request; ``token()`` gives one for a WebSocket's URL."""

    def __init__(self, tier: Tier, run: str, role: str = "guard") -> None:
        self.tier = tier
        self.name = f"bench-live-{run}" if role == "guard" else f"bench-{role}-{run}"
        self.password = secrets.token_urlsafe(18)
        tier.admin("create-user", self.name, "--role", role, stdin=self.password + "\n")
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = self._expires_at = 0.0
        self.logins = 0

    def token(self) -> str:
        """The current token; a new login once half its life is over. A login that fails while
        the old token is still good (the VIP away in a fault) keeps the old one and tries again
        at the next call."""
        with self._lock:
            if self._token and time.monotonic() < self._renew_at:
                return self._token
            try:
                response = httpx.post(
                    f"{self.tier.url}/api/v1/auth/token",
                    data={"username": self.name, "password": self.password},
                    verify=ca_context(),
                    timeout=10,
                )
                response.raise_for_status()
            except httpx.HTTPError:
                if self._token and time.monotonic() < self._expires_at:
                    return self._token
                raise
            body = response.json()
            life_s = float(body.get("expires_in") or 0) or 60.0
            self._token = str(body["access_token"])
            self._renew_at = time.monotonic() + life_s / 2
            self._expires_at = time.monotonic() + life_s
            self.logins += 1
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request


def operator_token(tier: Tier, run: str, role: str = "guard") -> str:
    """One token of a new operator (for runs shorter than a token's life)."""
    return OperatorLogin(tier, run, role).token()


@dataclass
class Simulator:
    """``parking-edge simulate`` against the VIP: an entry and an exit camera."""

    tier: Tier
    cameras: Cameras
    data_dir: Path
    rate: float
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def _command(self, *extra: str) -> list[str]:
        return [
            str(VENV_BIN / "parking-edge"),
            "simulate",
            "--central",
            self.tier.url,
            "--entry-camera",
            self.cameras.entry[0],
            "--entry-key",
            self.cameras.entry[1],
            "--exit-camera",
            self.cameras.exit[0],
            "--exit-key",
            self.cameras.exit[1],
            "--dwell",
            "1",
            "5",
            "--no-snapshots",
            "--backoff-cap-s",
            "2",
            "--breaker-reset-s",
            "2",
            "--data-dir",
            str(self.data_dir),
            *extra,
        ]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "SSL_CERT_FILE": str(CA)}

    def start(self) -> None:
        log_file = (self.data_dir.parent / f"{self.data_dir.name}.log").open("ab")
        self.process = subprocess.Popen(
            self._command("--rate", str(self.rate), "--metrics-port", str(self.metrics_port)),
            env=self._env(),
            stdout=log_file,
            stderr=log_file,
        )
        wait_for(lambda: self.metrics() is not None, "simulator metrics", 30)

    def metrics(self) -> dict[str, float] | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        figures: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            figures[name] = float(value)
        return figures

    def stop(self) -> dict[str, float]:
        """Last metrics, then SIGTERM; then drain what is left with a second run."""
        figures = self.metrics() or {}
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        drain = subprocess.run(
            self._command("--count", "0", "--exit-when-drained"),
            env=self._env(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if drain.returncode != 0:
            log(f"drain run exited {drain.returncode}: {drain.stderr.decode()[-500:]}")
        return figures

    def failures_logged(self) -> list[str]:
        """The uploader's own words for each failed send (its warnings in the log)."""
        log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        if not log_file.exists():
            return []
        return [
            line.split("uploader: ", 1)[1][:200]
            for line in log_file.read_text(errors="replace").splitlines()
            if "uploader: send of" in line
        ]

    def made(self) -> tuple[set[uuid.UUID], int]:
        """Every event id the outbox made (delivered, pending, dead), and how many are left."""
        with Outbox(self.data_dir / "outbox") as outbox:
            pending = outbox.pending_ids()
            dead = {letter.event_id for letter in outbox.dead_letters()}
            ids = outbox.delivered_ids() | set(pending) | dead
            return ids, len(pending) + len(dead)


def counter_total(figures: dict[str, float], counter: str) -> int:
    """One of the uploader's counters summed over its labels."""
    return int(sum(value for name, value in figures.items() if name.startswith(counter)))


def edge_latency_bound(figures: dict[str, float]) -> float:
    """Upper bound of the uploader's slowest POST (its latency histogram's first full bucket)."""
    total = sum(
        value
        for name, value in figures.items()
        if name.startswith("parking_edge_send_latency_seconds_count")
    )
    buckets: dict[float, float] = {}
    for name, value in figures.items():
        match = re.match(r'parking_edge_send_latency_seconds_bucket\{.*le="([^"]+)"', name)
        if match and match.group(1) != "+Inf":
            buckets[float(match.group(1))] = buckets.get(float(match.group(1)), 0) + value
    for bound in sorted(buckets):
        if buckets[bound] >= total:
            return bound
    return float("inf")


class Probe(threading.Thread):
    """One unique event at a time, one attempt each (but for a kept-alive connection the server
    closed without answering: see ``run``), every request timed. ``acked_at`` keeps, in order,
    the wall-clock time each acknowledged event's answer came back (central commits before it
    answers); ``pause`` stops it between two requests."""

    def __init__(self, tier: Tier, camera: tuple[str, str], rate: float) -> None:
        super().__init__(daemon=True)
        self.tier, self.camera, self.interval = tier, camera, 1.0 / rate
        self.stop_event = threading.Event()
        self.acked: set[uuid.UUID] = set()
        self.acked_at: dict[uuid.UUID, float] = {}
        self._paused = threading.Event()
        self._idle = threading.Event()
        # Every id sent, answered or not: a POST whose answer was lost may still be stored, which
        # is the at-least-once contract (the edge's uploader would resend it), not a duplicate.
        self.sent: set[uuid.UUID] = set()
        self.failures: list[str] = []
        self.retried = 0  # requests sent again after a kept-alive connection closed unanswered
        self.latencies: list[float] = []

    def run(self) -> None:
        with httpx.Client(
            base_url=self.tier.url,
            verify=ca_context(),
            timeout=httpx.Timeout(10, connect=2),
            headers={"X-API-Key": self.camera[1]},
        ) as client:
            rng = random.Random()
            while not self.stop_event.wait(self.interval):
                if self._paused.is_set():
                    self._idle.set()
                    continue
                self._idle.clear()
                event_id = uuid.uuid4()
                body = {
                    "event_id": str(event_id),
                    "camera_id": self.camera[0],
                    "captured_at": datetime.now(UTC).isoformat(),
                    "plate": synthetic_plate(rng),
                    "confidence": 0.95,
                }
                started = time.monotonic()
                self.sent.add(event_id)
                try:
                    try:
                        response = client.post("/api/v1/events", json=body)
                    except httpx.RemoteProtocolError:
                        # The server closed a kept-alive connection as the request went out,
                        # without answering (nginx closes idle connections when it reloads):
                        # HTTP/1.1's own race, not a failure of the tier. Sent once more on a
                        # fresh connection, as the edge's uploader does; counted apart.
                        self.retried += 1
                        response = client.post("/api/v1/events", json=body)
                    ok = response.status_code == 200
                    why = f"{response.status_code} {response.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                answered = time.time()
                self.latencies.append(time.monotonic() - started)
                if ok:
                    self.acked.add(event_id)
                    self.acked_at[event_id] = answered
                else:
                    self.failures.append(why)

    def pause(self) -> None:
        """Stop between two requests; return once none is in flight."""
        self._idle.clear()
        self._paused.set()
        if not self._idle.wait(timeout=30):
            raise TimeoutError("probe did not pause")

    def resume(self) -> None:
        self._paused.clear()

    def acked_after(self, moment: float) -> list[tuple[uuid.UUID, float]]:
        """Events acknowledged after the wall-clock ``moment``, oldest first."""
        answered = self.acked_at.copy()  # one C call: the probe's thread may be adding
        return [(event_id, at) for event_id, at in answered.items() if at > moment]


class VipWatcher(threading.Thread):
    """A fresh TCP + TLS connection and one GET to the VIP every 0.1 s: (time, answered)."""

    def __init__(self, tier: Tier) -> None:
        super().__init__(daemon=True)
        self.tier = tier
        self.stop_event = threading.Event()
        self.samples: list[tuple[float, bool]] = []
        self.context = ssl.create_default_context(cafile=str(CA))

    def _once(self) -> bool:
        try:
            with (
                socket.create_connection((self.tier.vip, 443), timeout=0.5) as raw,
                self.context.wrap_socket(raw, server_hostname=self.tier.server_name) as tls,
            ):
                tls.settimeout(1)
                tls.sendall(
                    f"GET /api/health/live HTTP/1.1\r\nHost: {self.tier.server_name}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                return tls.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def run(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            self.samples.append((started, self._once()))
            self.stop_event.wait(0.1)

    def back_after(self, since: float) -> float | None:
        """The outage clients saw after ``since``: from the last answered connection before the
        first failure to the first answered one after the last failure (0: none failed)."""
        after = [(t, ok) for t, ok in self.samples if t >= since]
        failed = [t for t, ok in after if not ok]
        if not failed:
            return 0.0
        answered = [t for t, ok in after if ok and t > failed[-1]]
        before = [t for t, ok in self.samples if ok and t < failed[0]]
        if not answered:
            return None
        return answered[0] - (before[-1] if before else since)


# A live connection that got no hello within this is given up and opened again.
HELLO_TIMEOUT_S = 5.0


class LiveClient(threading.Thread):
    """The live feed over the VIP; reconnects by itself (WebSocket pings find a dead peer)."""

    def __init__(self, tier: Tier, token: str | Callable[[], str]) -> None:
        super().__init__(daemon=True)
        self.tier, self.token = tier, token
        self.stop_event = threading.Event()
        self.connects: list[float] = []
        self.drops: list[float] = []
        self.events: list[float] = []
        self.errors: list[str] = []
        self.context = ssl.create_default_context(cafile=str(CA))

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                token = self.token() if callable(self.token) else self.token
                with connect(
                    f"wss://{self.tier.vip}/api/v1/live?token={token}",
                    ssl=self.context,
                    server_hostname=self.tier.server_name,
                    open_timeout=3,
                    close_timeout=1,
                    ping_interval=1,
                    ping_timeout=2,
                ) as ws:
                    opened, greeted = time.monotonic(), False
                    while not self.stop_event.is_set():
                        try:
                            message = json.loads(ws.recv(timeout=0.5))
                        except TimeoutError:
                            # central greets every connection at once: a silent one is dead
                            if not greeted and time.monotonic() - opened > HELLO_TIMEOUT_S:
                                raise
                            continue
                        if message.get("type") == "hello":
                            greeted = True
                            self.connects.append(time.monotonic())
                        elif message.get("type") not in ("ping", None):
                            self.events.append(time.monotonic())
            except (WebSocketException, OSError, TimeoutError, ValueError, httpx.HTTPError) as exc:
                # Any failure, a refused handshake (nginx's 502 while no central answers) or a
                # failed login included, is a drop: the client tries again, as a browser's
                # live page does.
                self.errors.append(f"{type(exc).__name__}: {exc}"[:160])
            if not self.stop_event.is_set():
                self.drops.append(time.monotonic())
                self.stop_event.wait(0.2)

    def story(self, since: float) -> str:
        """What the feed did after ``since``, for a note when it did not come back."""
        after = [t for t in self.drops if t > since]
        hellos = [t for t in self.connects if t > since]
        events = [t for t in self.events if t > since]

        def ago(times: list[float]) -> str:  # the last one, from ``since`` (-: before it)
            return f"{times[-1] - since:+.1f} s" if times else "never"

        return (
            f"live feed after the fault: {len(after)} drops, {len(hellos)} hellos,"
            f" {len(events)} events (last hello {ago(self.connects)}, last event"
            f" {ago(self.events)}, last drop {ago(self.drops)}); last errors {self.errors[-2:]}"
        )

    def dropped_after(self, since: float) -> bool:
        return any(t > since for t in self.drops)

    def reconnected_after(self, since: float) -> float | None:
        """Seconds from ``since`` until the feed was back (hello) and delivered an event;
        0.0 when it never dropped and kept delivering (it was on the central that stayed up)."""
        hellos = [t for t in self.connects if t > since]
        if not self.dropped_after(since):
            return 0.0 if any(t > since for t in self.events) else None
        if not hellos:
            return None
        events = [t for t in self.events if t > hellos[0]]
        return events[0] - since if events else None


# -- scenarios -------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    failed_sends: int = 0
    reconnects: int = 0  # calls the client sent again on a fresh connection, no failure seen
    unacked_stored: int = 0  # probe posts whose answer was lost but which central stored
    events_made: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    vip_move_s: float | None = None
    max_latency_s: float = 0.0
    edge_latency_le_s: float = 0.0
    probe_failed: int = 0
    probe_retried: int = 0  # sent again: a kept-alive connection closed without an answer
    live_reconnect_s: float | None = None
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def observers(
    tier: Tier, cameras: Cameras, token: str, work: Path, name: str, rate: float, probe_rate: float
) -> Iterator[tuple[Simulator, Probe, VipWatcher, LiveClient]]:
    sim = Simulator(tier, cameras, work / name, rate)
    probe, watcher, live = (
        Probe(tier, cameras.probe, probe_rate),
        VipWatcher(tier),
        LiveClient(tier, token),
    )
    sim.start()
    for thread in (probe, watcher, live):
        thread.start()
    try:
        yield sim, probe, watcher, live
    finally:
        for thread in (probe, watcher, live):
            thread.stop_event.set()
        for thread in (probe, watcher, live):
            thread.join(timeout=15)
        if sim.process is not None and sim.process.poll() is None:
            sim.process.kill()


def fault_central_crash(tier: Tier, result: Result) -> float:
    host = tier.active
    log(f"crash {host} (the active central's host)")
    at = time.monotonic()
    lab("crash", host)
    time.sleep(8)
    log(f"power on {host}")
    lab("poweron", host, timeout=300)
    result.recovery_s = wait_for(lambda: tier.central_ready(host), f"{host} ready", 180) + 8
    time.sleep(7)  # nginx's fail_timeout (5 s): traffic goes back to the active central
    return at


def fault_kill9(tier: Tier, result: Result) -> float:
    host = tier.active

    def restarts() -> int:
        out = sh(host, "systemctl show -p NRestarts --value parking-central", timeout=20)
        return int(out.strip() or 0)

    before = restarts()
    log(f"kill -9 of parking-central on {host}")
    at = time.monotonic()
    sh(host, "systemctl kill --signal=SIGKILL parking-central")
    wait_for(lambda: restarts() > before, "systemd restarted parking-central", 30)
    wait_for(lambda: tier.central_ready(host), f"{host} ready", 60)
    result.recovery_s = time.monotonic() - at
    time.sleep(7)
    return at


def fault_lb_crash(tier: Tier, result: Result) -> float:
    holders = tier.vip_holders()
    if len(holders) != 1:
        raise RuntimeError(f"expected one VIP holder, found {holders}")
    holder = holders[0]
    log(f"crash {holder} (holds the VIP)")
    at = time.monotonic()
    lab("crash", holder)
    time.sleep(8)
    log(f"power on {holder}")
    lab("poweron", holder, timeout=300)

    def lb_back() -> bool:
        return sh(
            holder, "curl -fsS --max-time 1 http://127.0.0.1:8081/healthz", check=False, timeout=20
        ).startswith("ok") and "active" in sh(
            holder, "systemctl is-active keepalived", check=False, timeout=20
        )

    result.recovery_s = wait_for(lb_back, f"{holder} nginx + keepalived back", 120) + 8
    time.sleep(4)
    holders_now = tier.vip_holders()
    if len(holders_now) != 1:
        result.notes.append(f"VIP holders after power-on: {holders_now}")
    return at


def build_release_wheel(package: str) -> Path:
    """A fresh build of this checkout's ``packaging/<package>`` with another timestamp: a new
    release (other checksum) of the same code, so every step of a rollout restarts."""
    out = Path(tempfile.mkdtemp(prefix=f"parking-{package}-release-"))
    subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(REPO / "packaging" / package),
        ],
        env={**os.environ, "SOURCE_DATE_EPOCH": str(int(time.time()))},
        check=True,
        capture_output=True,
    )
    return next(out.glob(f"parking_{package}-*.whl"))


def release_id(wheel: Path) -> str:
    """The release a wheel installs as (roles/central, roles/edge: its sha256, 16 digits)."""
    return hashlib.sha256(wheel.read_bytes()).hexdigest()[:16]


def fault_upgrade(tier: Tier, result: Result) -> float:
    wheel = build_release_wheel("central")
    log(f"playbooks/upgrade.yml with {wheel.name} (new release)")
    at = time.monotonic()
    result.recovery_s = converge("playbooks/upgrade.yml", "-e", f"central_wheel={wheel}")
    time.sleep(3)
    return at


def fault_rollback(tier: Tier, result: Result) -> float:
    # playbooks/rollback.yml over the tier and the lanes: every host must have a release to
    # return to (an upgrade before it; tests/lab/test_rollout.py), so not one of SCENARIOS.
    log("playbooks/rollback.yml (centrals and lanes back to their previous release)")
    at = time.monotonic()
    result.recovery_s = converge("playbooks/rollback.yml", limit=(*TIER_HOSTS, "edge"))
    time.sleep(3)
    return at


FAULTS: dict[str, Callable[[Tier, Result], float]] = {
    "central-crash": fault_central_crash,
    "kill9": fault_kill9,
    "lb-crash": fault_lb_crash,
    "upgrade": fault_upgrade,
    "rollback": fault_rollback,
}


def count_stored(tier: Tier, cameras: Cameras) -> dict[uuid.UUID, int]:
    with tier.database() as db:
        rows = db.execute(
            "SELECT event_id, count(*) FROM plate_events WHERE camera_id = ANY(%s)"
            " GROUP BY event_id",
            (cameras.ids,),
        ).fetchall()
    return {uuid.UUID(str(row[0])): int(row[1]) for row in rows}


def run_scenario(
    tier: Tier,
    name: str,
    cameras: Cameras,
    token: str,
    work: Path,
    made_before: set[uuid.UUID],
    *,
    rate: float,
    probe_rate: float,
) -> tuple[Result, set[uuid.UUID]]:
    result = Result(name)
    with observers(tier, cameras, token, work, name, rate, probe_rate) as (sim, probe, watch, live):
        # A precondition, not a figure: right after the lb-crash scenario the VIP may still be
        # settling (its holder rebooted and keepalived re-elects), so give the feed a minute.
        try:
            wait_for(lambda: bool(live.connects) and bool(live.events), "live feed delivers", 60)
        except RuntimeError as exc:
            # say what the feed saw: never greeted, greeted but silent, or dropped over and over
            raise RuntimeError(
                f"{exc} (before {name}: {len(live.connects)} greeted connections, "
                f"{len(live.events)} events, {len(live.drops)} drops; last errors: "
                f"{live.errors[-3:]})"
            ) from exc
        time.sleep(3)
        at = FAULTS[name](tier, result)
        time.sleep(5)
        if live.dropped_after(at):
            # the feed dropped: give it a bounded while to come back before the figures
            with contextlib.suppress(RuntimeError):
                wait_for(lambda: live.reconnected_after(at) is not None, "live feed back", 20)
        figures = sim.stop()
    made, left = sim.made()
    made |= probe.acked
    stored = count_stored(tier, cameras)
    every = made_before | made | probe.sent
    # Failed event sends, all kinds (transport, http_5xx, ...), and calls the edge client
    # re-sent on a fresh connection before the uploader saw any failure.
    result.failed_sends = counter_total(figures, "parking_edge_send_failures_total")
    result.reconnects = counter_total(figures, "parking_edge_send_reconnects_total")
    result.unacked_stored = len((probe.sent - probe.acked) & stored.keys())
    result.events_made = len(made)
    result.events_lost = len(made - stored.keys()) + left
    result.events_duplicated = sum(n - 1 for n in stored.values()) + len(stored.keys() - every)
    result.vip_move_s = watch.back_after(at) if name == "lb-crash" else None
    result.max_latency_s = max(probe.latencies, default=0.0)
    result.edge_latency_le_s = edge_latency_bound(figures)
    result.probe_failed = len(probe.failures)
    result.probe_retried = probe.retried
    result.live_reconnect_s = live.reconnected_after(at)
    if result.live_reconnect_s is None:
        result.notes.append(live.story(at))
    result.notes += [f"edge: {why}" for why in sim.failures_logged()[:3]]
    result.notes += probe.failures[:3]
    return result, every

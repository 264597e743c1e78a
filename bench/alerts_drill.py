"""Alert drill in the lab: induce each fault, time the alert's delivery and its resolution.

    .venv/bin/python bench/alerts_drill.py [--only NAME,...] [--no-deadman] [--list]

Needs the lab up and converged with playbooks/site.yml (at least playbooks/monitoring.yml on
mon1). The lab inventory shortens every alert's `for:` to 5 s and makes every Alertmanager
route also post to a webhook recorder on mon1 (GET http://<mon1>:9099/deliveries); the
alert expressions (thresholds, rate windows) are production's. Per fault the drill checks the
alert is not already firing, induces the fault, waits for Alertmanager's delivery of the
matching alert (firing) at the recorder, removes the fault and waits for the delivery of the
same alert resolved. Faults on different hosts run in parallel lanes; faults of one lane
(e.g. the three central faults, which share the fleet-wide API figures) one after another.
etcd's quorum loss (Patroni without a leader: every write fails) runs alone after the lanes, and
the Prometheus-stopped (deadman) fault last, alone.

A fault whose tier is not running (no parking-central, Patroni or edge agent) is skipped with
the reason. Prints a table (alert, fault, seconds to fire, seconds to resolve) and, last, one
JSON line: expected, fired, resolved, skipped, failures, per-alert figures, total_s.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import lab_pki
from support.lab_tier import reset_outgoing, stop_resetting

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "lab" / "lab"
PROMETHEUS_PORT = 9090
RECORDER_PORT = 9099
CENTRAL_PORT = 8000
PATRONI_PORT = 8008
# Requests per second of fast answers that wash a central fault out of the 5-minute windows.
DILUTION_PER_S = 150
EDGE_UNIT = "parking-edge"
EDGE_CONFIG = "/etc/parking-edge/edge.toml"
CENTRAL_UNIT = "parking-central"
# Where the drill's own state lives on a lab host (tmpfs: gone at reboot).
HOST_DIR = "/run/parking-drill"
# Loop-mounted data disks for the disk faults (the lab's root filesystems are overlays on the
# machine's disk, which the rules ignore and nobody may fill).
DISK_MB = 64
DISK_DIR = REPO / ".lab" / "drill"
# The memory faults push the (shared) used fraction to these, for the few seconds the alerts
# need: between the 70 % warning and the 90 % critical threshold, then above both. One step
# to 91.5 % would race: Alertmanager's inhibition hides the warning for good once the critical
# twin on the same instance fires, which on a quiet machine (a fast fill) comes first.
MEMORY_HIGH_USED = 0.80
MEMORY_CRITICAL_USED = 0.915
# Never leave less than this available on the machine.
MEMORY_FLOOR_BYTES = 3 * 1024**3 // 2
# WAL written while a replica's replay is paused: above the 16 MiB lag threshold.
LAG_ROWS = 120_000
# ParkingEdgeOutboxGrowing's depth (monitoring/prometheus/rules/parking-alerts.yml).
EDGE_OUTBOX_ALERT_DEPTH = 100
# roles/pgbackrest's textfile metric on the repository host (ParkingBackupTooOld's input).
BACKUP_METRICS = "/var/lib/prometheus/node-exporter/pgbackrest.prom"
BACKUP_METRIC = "pgbackrest_last_success_timestamp_seconds"

TRAFFIC_PROGRAM = r"""
import http.client, ssl, sys, threading, time
# Central answers HTTPS to certificates from the internal CA only: mon1 shows Prometheus's.
tls = ssl.create_default_context(cafile="/etc/prometheus/tls/ca.crt")
tls.load_cert_chain("/etc/prometheus/tls/prometheus.crt", "/etc/prometheus/tls/prometheus.key")
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
workers, rate, limit = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
method = sys.argv[7] if len(sys.argv) > 7 else "POST"
key = open(sys.argv[8]).read().strip() if len(sys.argv) > 8 else "parking-drill-unknown-key"
end = time.time() + limit
pause = workers / rate if rate > 0 else 0.0
headers = {"X-API-Key": key, "Content-Type": "application/json"}
def work():
    conn = None
    while time.time() < end:
        began = time.time()
        try:
            if conn is None:
                conn = http.client.HTTPSConnection(host, port, timeout=30, context=tls)
            conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
            conn.getresponse().read()
        except Exception:
            conn = None
            time.sleep(0.2)
        if pause:
            time.sleep(max(0.0, pause - (time.time() - began)))
for _ in range(workers):
    threading.Thread(target=work, daemon=True).start()
time.sleep(limit)
"""


class DrillError(RuntimeError):
    """The lab is not in a state the drill can use."""


def run(
    argv: list[str], *, stdin: str | None = None, check: bool = True, timeout: float = 120
) -> str:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
    )
    if check and done.returncode != 0:
        raise DrillError(f"{' '.join(argv)[:200]} exited {done.returncode}: {done.stderr[-800:]}")
    return done.stdout


def lab(*args: str, check: bool = True, timeout: float = 120) -> str:
    return run([str(LAB), *args], check=check, timeout=timeout)


def sh(host: str, command: str, *, stdin: str | None = None, check: bool = True) -> str:
    """A shell command inside a lab host, as root."""
    return run([str(LAB), "exec", host, "sh", "-c", command], stdin=stdin, check=check)


def hosts(pattern: str) -> dict[str, str]:
    """Inventory hosts of a pattern (none when the group does not exist)."""
    rows = (
        line.split() for line in lab("hosts", pattern, check=False).splitlines() if line.strip()
    )
    return {row[0]: row[1] for row in rows}


def http_json(url: str, timeout: float = 5, context: ssl.SSLContext | None = None) -> Any:
    with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:  # noqa: S310
        return json.load(answer)


def unit_active(host: str, unit: str) -> bool:
    return sh(host, f"systemctl is-active {unit}", check=False).strip() == "active"


def start_unit(host: str, unit: str, *argv: str) -> None:
    """A transient systemd unit on a host (stopped first if an earlier drill left it)."""
    sh(host, f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; true")
    lab("exec", host, "systemd-run", "--quiet", "--collect", f"--unit={unit}", "--", *argv)


def stop_unit(host: str, unit: str) -> None:
    sh(host, f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; true")


def put_file(host: str, path: str, content: str) -> None:
    sh(host, f"mkdir -p {HOST_DIR} && cat > {path}", stdin=content)


class Recorder:
    """Alertmanager's deliveries as recorded on the monitoring host, polled in the background."""

    def __init__(self, address: str) -> None:
        self.url = f"http://{address}:{RECORDER_PORT}/deliveries"
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Only what arrives from now on (the recorder may hold thousands of Watchdog pings).
        self._last = int(http_json(self.url.replace("/deliveries", "/-/healthy"))["deliveries"])
        self.poll()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def poll(self) -> None:
        rows: list[dict[str, Any]] = http_json(f"{self.url}?after={self._last}")
        with self._lock:
            self.rows.extend(rows)
            if rows:
                self._last = rows[-1]["seq"]

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.poll()
            except (OSError, ValueError):
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def find(
        self, alertname: str, labels: dict[str, str], status: str, since: float
    ) -> float | None:
        """Arrival time of the first delivery after `since` holding the alert in `status`."""
        with self._lock:
            rows = list(self.rows)
        for row in rows:
            if row["received"] < since:
                continue
            for alert in row["payload"].get("alerts", []):
                found = alert.get("labels", {})
                if (
                    alert.get("status") == status
                    and found.get("alertname") == alertname
                    and all(found.get(k) == v for k, v in labels.items())
                ):
                    return float(row["received"])
        return None


@dataclass
class Expect:
    alert: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    name: str
    what: str
    expects: list[Expect]
    inject: Callable[[], object]
    remove: Callable[[], object]
    # After the alerts resolved (or gave up): stop helpers such as traffic.
    finish: Callable[[], object] = lambda: None
    # None when the fault can run, else why it is skipped.
    ready: Callable[[], str | None] = lambda: None
    fire_timeout: float = 90
    resolve_timeout: float = 120


@dataclass
class Result:
    alert: str
    fault: str
    labels: dict[str, str]
    fire_s: float | None = None
    resolve_s: float | None = None
    skipped: str | None = None
    error: str | None = None


class Drill:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mon, self.mon_address = next(iter(hosts("monitoring").items()))
        self.prometheus = f"http://{self.mon_address}:{PROMETHEUS_PORT}"
        self.recorder = Recorder(self.mon_address)
        self.cleanups: list[Callable[[], object]] = []
        self._print_lock = threading.Lock()

    # --- lab state -------------------------------------------------------------------------

    def log(self, message: str) -> None:
        with self._print_lock:
            print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        result: list[dict[str, Any]] = http_json(url)["data"]["result"]
        return result

    def active(self, expect: Expect) -> bool:
        """Whether Prometheus has the alert pending or firing now."""
        alerts = http_json(f"{self.prometheus}/api/v1/alerts")["data"]["alerts"]
        return any(
            a["labels"].get("alertname") == expect.alert
            and all(a["labels"].get(k) == v for k, v in expect.labels.items())
            for a in alerts
        )

    def target_up(self, job: str, instance: str) -> bool:
        rows = self.query(f'up{{job="{job}",instance="{instance}"}}')
        return bool(rows) and rows[0]["value"][1] == "1"

    def patroni_members(self) -> list[dict[str, Any]]:
        for address in hosts("db").values():
            try:
                members: list[dict[str, Any]] = http_json(
                    f"https://{address}:{PATRONI_PORT}/cluster",
                    timeout=3,
                    context=lab_pki.admin().context(),  # mutual TLS (roles/patroni)
                )["members"]
                return members
            except (OSError, ValueError, KeyError):
                continue
        return []

    # --- one fault -------------------------------------------------------------------------

    def await_deliveries(
        self, expects: dict[int, Expect], state: str, since: float, timeout: float
    ) -> dict[int, float]:
        """Seconds from ``since`` to the recorder's first ``state`` delivery of each expected
        alert, for those delivered within ``timeout``."""
        pending = dict(expects)
        seen: dict[int, float] = {}
        limit = time.monotonic() + timeout
        while pending and time.monotonic() < limit:
            for i, e in list(pending.items()):
                at = self.recorder.find(e.alert, e.labels, state, since)
                if at is not None:
                    seen[i] = round(at - since, 1)
                    self.log(f"{state} {e.alert} {e.labels} after {seen[i]}s")
                    del pending[i]
            time.sleep(0.5)
        return seen

    def run_fault(self, fault: Fault) -> list[Result]:
        reason = fault.ready()  # may name the expected labels (the replica, the camera)
        results = [Result(e.alert, fault.what, e.labels) for e in fault.expects]
        if reason:
            self.log(f"skip {fault.name}: {reason}")
            for r in results:
                r.skipped = reason
            return results
        deadline = time.monotonic() + 60
        while any(self.active(e) for e in fault.expects):
            if time.monotonic() > deadline:
                for r, e in zip(results, fault.expects, strict=True):
                    if self.active(e):
                        r.error = "already firing before the fault"
                return results
            time.sleep(2)
        self.log(f"inject {fault.name}: {fault.what}")
        injected = time.time()
        try:
            fault.inject()
            seen = self.await_deliveries(
                dict(enumerate(fault.expects)), "firing", injected, fault.fire_timeout
            )
            for i in range(len(results)):
                if i in seen:
                    results[i].fire_s = seen[i]
                else:
                    results[i].error = f"not delivered within {fault.fire_timeout:.0f}s"
        finally:
            self.log(f"remove {fault.name}")
            removed = time.time()
            fault.remove()
        try:
            fired = {i: e for i, e in enumerate(fault.expects) if results[i].fire_s is not None}
            seen = self.await_deliveries(fired, "resolved", removed, fault.resolve_timeout)
            for i in fired:
                if i in seen:
                    results[i].resolve_s = seen[i]
                else:
                    results[i].error = f"not resolved within {fault.resolve_timeout:.0f}s"
        finally:
            fault.finish()
        return results

    def run_lane(self, faults: list[Fault]) -> list[Result]:
        out: list[Result] = []
        for fault in faults:
            try:
                out.extend(self.run_fault(fault))
            except Exception as error:  # one broken fault must not hide the others
                self.log(f"{fault.name} failed: {error}")
                out.extend(
                    Result(e.alert, fault.what, e.labels, error=f"{type(error).__name__}: {error}")
                    for e in fault.expects
                )
        return out

    # --- node faults (monitoring host) -----------------------------------------------------

    def disk_fault(self, name: str, free: float, alert: str) -> Fault:
        mount = f"/srv/{name}"
        image = DISK_DIR / f"{name}.img"
        device: list[str] = []

        def setup() -> None:
            self.teardown_disk(name)
            DISK_DIR.mkdir(parents=True, exist_ok=True)
            run(["truncate", "-s", f"{DISK_MB}M", str(image)])
            run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)])
            loop = run(["losetup", "-f", "--show", str(image)]).strip()
            device.append(loop)
            numbers = Path(f"/sys/block/{Path(loop).name}/dev").read_text().strip().split(":")
            sh(
                self.mon,
                f"mkdir -p {mount} && mknod /dev/{name} b {numbers[0]} {numbers[1]} "
                f"&& mount /dev/{name} {mount}",
            )
            self.cleanups.append(lambda: self.teardown_disk(name))

        def inject() -> None:
            setup()
            sh(
                self.mon,
                f"size=$(df -B1 --output=size {mount} | tail -1); "
                f"avail=$(df -B1 --output=avail {mount} | tail -1); "
                f"fallocate -l $((avail - size * {int(free * 100)} / 100)) {mount}/fill",
            )

        def remove() -> None:
            sh(self.mon, f"rm -f {mount}/fill")

        return Fault(
            name=name,
            what=f"{self.mon}:{mount} ({DISK_MB} MiB ext4) filled to {100 - free * 100:.0f} %",
            expects=[Expect(alert, {"instance": self.mon, "mountpoint": mount})],
            inject=inject,
            remove=remove,
        )

    def teardown_disk(self, name: str) -> None:
        mount = f"/srv/{name}"
        sh(
            self.mon,
            f"umount {mount} 2>/dev/null; rm -f /dev/{name}; rmdir {mount} 2>/dev/null; true",
            check=False,
        )
        image = str(DISK_DIR / f"{name}.img")
        for line in run(["losetup", "-j", image], check=False).splitlines():
            run(["losetup", "-d", line.split(":")[0]], check=False)
        Path(image).unlink(missing_ok=True)

    def memory_fault(self, name: str, target: float, alert: str) -> Fault:
        """Memory taken by a tmpfs file on the monitoring host (fallocate: the kernel zeroes
        the pages without a fault per page, ~20x faster than a process touching them here).
        The lab's hosts share the machine's /proc/meminfo: every host sees the same use."""
        mount = f"{HOST_DIR}/memory"

        def meminfo() -> dict[str, int]:
            rows = (line.split() for line in Path("/proc/meminfo").read_text().splitlines())
            return {row[0].rstrip(":"): int(row[1]) * 1024 for row in rows}

        def to_eat() -> int:
            info = meminfo()
            return info["MemAvailable"] - int((1 - target) * info["MemTotal"])

        def ready() -> str | None:
            if meminfo()["MemAvailable"] - to_eat() < MEMORY_FLOOR_BYTES:
                return f"the machine is too small to push memory use to {target:.0%}"
            return None

        def inject() -> None:
            eat = max(to_eat(), 0)
            self.cleanups.append(release)
            sh(
                self.mon,
                f"mkdir -p {mount} && mount -t tmpfs -o size={eat + 2**30} parking-drill {mount}"
                f" && fallocate -l {eat} {mount}/hold",
            )

        def release() -> None:
            sh(self.mon, f"umount {mount} 2>/dev/null; rmdir {mount} 2>/dev/null; true")

        return Fault(
            name=name,
            what=f"a tmpfs file on {self.mon} holds memory until {target:.1%} is used"
            " (hosts share the kernel)",
            expects=[Expect(alert, {"instance": self.mon})],
            inject=inject,
            remove=release,
            ready=ready,
            fire_timeout=180,  # filling ~20 GiB takes 20-80 s on a busy machine
        )

    def cert_fault(self, port: int, days: int, alert: str) -> Fault:
        unit = f"parking-drill-tls-{port}"

        def serve(valid_days: int) -> None:
            key, crt = f"{HOST_DIR}/tls-{port}.key", f"{HOST_DIR}/tls-{port}.crt"
            sh(
                self.mon,
                f"mkdir -p {HOST_DIR} && openssl req -x509 -newkey ec "
                f"-pkeyopt ec_paramgen_curve:prime256v1 -nodes -days {valid_days} "
                f"-subj /CN=parking-drill -keyout {key} -out {crt} 2>/dev/null",
            )
            start_unit(
                self.mon, unit, "/usr/bin/openssl", "s_server", "-quiet", "-www",
                "-accept", f"127.0.0.1:{port}", "-cert", crt, "-key", key,
            )  # fmt: skip

        def inject() -> None:
            self.cleanups.append(lambda: stop_unit(self.mon, unit))
            serve(days)

        return Fault(
            name=f"cert-{days}d",
            what=f"https://127.0.0.1:{port}/ on {self.mon} serves a certificate valid {days} days"
            " (renewed: 90 days)",
            expects=[Expect(alert, {"instance": f"https://127.0.0.1:{port}/"})],
            inject=inject,
            remove=lambda: serve(90),
            finish=lambda: stop_unit(self.mon, unit),
        )

    # --- central faults --------------------------------------------------------------------

    def central_faults(self) -> list[Fault]:
        centrals = hosts("central")
        if not centrals:
            return []
        # The last central: the load balancers' backup, so the drill never takes live traffic.
        target = sorted(centrals)[-1]
        address = centrals[target]
        traffic = "parking-drill-traffic"
        lock_unit = "parking-drill-lock"
        locker: dict[str, str] = {}
        path = "/api/v1/cameras/parking-drill/heartbeat"
        # The slow fault needs requests that reach the database: an unknown key is refused
        # before any lookup once its address failed too often (PARKING_CLIENT_FAILURES_PER_MIN),
        # so it sends a registered drill camera's list fetches, which read list_entries.
        drill_camera = "parking-drill"
        key_file = f"{HOST_DIR}/drill-camera.key"
        lists_path = "/api/v1/edge/lists"

        def ready() -> str | None:
            if not unit_active(target, CENTRAL_UNIT):
                return f"{CENTRAL_UNIT} is not running on {target}"
            if not self.target_up("parking-central", target):
                return f"Prometheus does not scrape {target}"
            return None

        def send(workers: int, rate: float, *, as_camera: bool = False) -> None:
            """Open-loop API traffic to the target. By default requests with an unknown camera
            key, each a database lookup (401 when the database answers, 503 when it does not);
            ``as_camera``: the drill camera's list fetches (each reads list_entries)."""
            put_file(self.mon, f"{HOST_DIR}/traffic.py", TRAFFIC_PROGRAM)
            extra = ["GET", key_file] if as_camera else []
            start_unit(
                self.mon, traffic, "/usr/bin/python3", f"{HOST_DIR}/traffic.py", address,
                str(CENTRAL_PORT), lists_path if as_camera else path, str(workers), str(rate),
                "600", *extra,
            )  # fmt: skip
            self.cleanups.append(lambda: stop_unit(self.mon, traffic))

        def drill_camera_key() -> None:
            """The drill camera's key (registered on first use, a fresh key on every later one),
            left only in a root-only file on the monitoring host."""
            admin = "/usr/local/sbin/parking-central-admin"
            key = sh(
                target,
                f"{admin} create-camera {drill_camera} --lot {drill_camera} --direction entry"
                f" 2>/dev/null || {admin} rotate-camera-key {drill_camera}",
            ).strip()
            if not key:
                raise DrillError(f"no key for the drill camera {drill_camera} on {target}")
            sh(self.mon, f"mkdir -p {HOST_DIR} && umask 077 && cat > {key_file}", stdin=key)
            self.cleanups.append(lambda: sh(self.mon, f"rm -f {key_file}", check=False))

        def quiet() -> None:
            stop_unit(self.mon, traffic)

        def cut_db() -> None:
            reset_outgoing(target, "tcp dport 5432")
            self.cleanups.append(lambda: stop_resetting(target))
            send(workers=2, rate=5)

        def heal_db() -> None:
            stop_resetting(target)
            # Fast answers dilute the 5xx in the 5-minute window, at a bounded pace: the failed-key
            # limit answers them in microseconds, and an unbounded loop would leave tens of
            # thousands of fast requests in the window for the next fault to outweigh.
            send(workers=16, rate=DILUTION_PER_S)

        def slow_db() -> None:
            drill_camera_key()
            leader = next((m for m in self.patroni_members() if m["role"] == "leader"), None)
            if leader is None:
                raise DrillError("no Patroni leader to hold the lock on")
            cycles = "".join(
                "BEGIN; LOCK TABLE list_entries IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4);"
                " COMMIT;"
                " SELECT pg_sleep(0.2);\n"
                for _ in range(50)
            )
            sql = "SET client_connection_check_interval = '200ms';\n" + cycles
            host = locker["host"] = leader["name"]
            put_file(host, f"{HOST_DIR}/lock.sql", sql)
            start_unit(
                host, lock_unit, "/usr/sbin/runuser", "-u", "postgres", "--",
                "/usr/bin/psql", "-q", "-d", "parking", "-f", f"{HOST_DIR}/lock.sql",
            )  # fmt: skip
            self.cleanups.append(lambda: stop_unit(host, lock_unit))
            # Open loop (requests arrive whatever the answers do): most wait on a lock > 1 s.
            send(workers=48, rate=12, as_camera=True)

        def fast_db() -> None:
            stop_unit(locker["host"], lock_unit)
            send(workers=16, rate=DILUTION_PER_S)  # fast answers bring the window's p95 down

        return [
            Fault(
                name="central-down",
                what=f"systemctl stop {CENTRAL_UNIT} on {target}",
                expects=[Expect("ParkingCentralDown", {"instance": target})],
                inject=lambda: sh(target, f"systemctl stop {CENTRAL_UNIT}"),
                remove=lambda: sh(target, f"systemctl start {CENTRAL_UNIT}"),
                ready=ready,
            ),
            Fault(
                name="central-5xx",
                what=f"{target} gets TCP resets from PostgreSQL; API traffic answers 503",
                expects=[
                    Expect("ParkingCentralDatabaseUnreachable", {"instance": target}),
                    Expect("ParkingHighErrorRate"),
                ],
                inject=cut_db,
                remove=heal_db,
                finish=quiet,
                ready=ready,
                fire_timeout=150,
                resolve_timeout=180,
            ),
            Fault(
                name="central-slow",
                what="4 s locks on list_entries (leader) while camera list fetches wait on them",
                expects=[Expect("ParkingSlowResponses")],
                inject=slow_db,
                remove=fast_db,
                finish=quiet,
                ready=ready,
                fire_timeout=150,
                resolve_timeout=180,
            ),
        ]

    # --- database faults -------------------------------------------------------------------

    def db_faults(self) -> list[Fault]:
        chosen: dict[str, str] = {}

        def replica() -> str | None:
            members = self.patroni_members()
            if not any(m["role"] == "leader" for m in members):
                return None
            # A plain replica, never the synchronous one: commits wait on that one.
            ordered = sorted(m["name"] for m in members if m["role"] == "replica")
            streaming = [
                name
                for name in ordered
                for m in members
                if m["name"] == name and m.get("state") == "streaming"
            ]
            return streaming[0] if streaming else None

        def ready() -> str | None:
            name = replica()
            deadline = time.monotonic() + 90  # a replica of the fault before may still catch up
            while name is None and time.monotonic() < deadline:
                time.sleep(2)
                name = replica()
            if name is None:
                return "no Patroni cluster with a leader and a streaming asynchronous replica"
            chosen["replica"] = name
            chosen["leader"] = next(
                m["name"] for m in self.patroni_members() if m["role"] == "leader"
            )
            return None

        def psql(host: str, sql: str, db: str = "postgres") -> str:
            return sh(host, f'runuser -u postgres -- psql -qAt -d {db} -c "{sql}"')

        def lag() -> None:
            """The replica stops receiving WAL (its connections to the leader's PostgreSQL and
            to the backup repository are reset; Patroni would resume a paused replay at once)
            while the leader writes ~30 MiB."""
            addresses = hosts("db")
            blocked = [f"ip daddr {addresses[chosen['leader']]} tcp dport 5432"]
            blocked += [f"ip daddr {a} meta l4proto tcp" for a in hosts("backup").values()]
            replica = chosen["replica"]
            reset_outgoing(replica, *blocked)
            self.cleanups.append(lambda: stop_resetting(replica))
            psql(
                chosen["leader"],
                "DROP TABLE IF EXISTS parking_drill_lag; CREATE TABLE parking_drill_lag AS "  # noqa: S608 (constant)
                f"SELECT g, repeat('x', 200) AS pad FROM generate_series(1, {LAG_ROWS}) g",
            )

        def unlag() -> None:
            stop_resetting(chosen["replica"])
            psql(chosen["leader"], "DROP TABLE IF EXISTS parking_drill_lag")

        def stop_pg() -> None:
            sh(chosen["replica"], "systemctl stop patroni")
            self.cleanups.append(lambda: sh(chosen["replica"], "systemctl start patroni"))

        # Expectations name the replica chosen at ready() time: resolved lazily.
        lag_expect = Expect("ParkingReplicationLag")
        down_expects = [Expect("ParkingPostgresDown"), Expect("ParkingScrapeTargetDown")]

        def ready_lag() -> str | None:
            reason = ready()
            lag_expect.labels = {"instance": chosen.get("replica", "")}
            return reason

        def ready_down() -> str | None:
            reason = ready()
            down_expects[0].labels = {"instance": chosen.get("replica", "")}
            down_expects[1].labels = {"instance": chosen.get("replica", ""), "job": "patroni"}
            return reason

        return [
            Fault(
                name="replication-lag",
                what="a replica's WAL stream is reset while the leader writes ~30 MiB of WAL",
                expects=[lag_expect],
                inject=lag,
                remove=unlag,
                ready=ready_lag,
            ),
            Fault(
                name="postgres-down",
                what="systemctl stop patroni (and its PostgreSQL) on a replica",
                expects=down_expects,
                inject=stop_pg,
                remove=lambda: sh(chosen["replica"], "systemctl start patroni"),
                ready=ready_down,
                resolve_timeout=150,
            ),
        ]

    # --- edge faults -----------------------------------------------------------------------

    def edge_faults(self) -> list[Fault]:
        edges = hosts("edge")
        if not edges:
            return []
        target = sorted(edges)[-1]

        def cut() -> None:
            lab("cut", target)
            self.cleanups.append(restore)

        def restore() -> None:
            lab("restore", target)

        camera = Expect("ParkingCameraOffline")
        outbox = Expect("ParkingEdgeOutboxGrowing")
        stale = Expect("ParkingEdgeOutboxStale")
        silenced: dict[str, str] = {}

        def ready_camera() -> str | None:
            """The last edge host whose agent runs and whose camera beats to central."""
            why = "no edge agent runs"
            for host in sorted(edges, reverse=True):
                if not unit_active(host, EDGE_UNIT):
                    why = f"{EDGE_UNIT} is not running on {host}"
                    continue
                config = tomllib.loads(sh(host, f"cat {EDGE_CONFIG}"))
                name = config["camera"]["id"]
                if self.query(f'parking_camera_seconds_since_heartbeat{{camera="{name}"}} < 30'):
                    camera.labels = {"camera": name}
                    outbox.labels = {"instance": host}
                    stale.labels = {"instance": host}
                    silenced["host"] = host
                    silenced["central"] = urllib.parse.urlsplit(config["central"]["url"]).hostname
                    return None
                why = f"camera {name} of {host} does not heartbeat to central"
            return why

        def unlink() -> None:
            """The edge host's packets to central's VIP are rejected: heartbeats stop reaching
            central and the outbox queues every event (Prometheus still scrapes the edge)."""
            self.cleanups.append(relink)
            reset_outgoing(silenced["host"], f"ip daddr {silenced['central']}")

        def relink() -> None:
            stop_resetting(silenced["host"])

        return [
            Fault(
                name="edge-link-down",
                what="an edge host's packets to the VIP are rejected (nft): its camera's heartbeats"
                f" stop, its outbox grows past {EDGE_OUTBOX_ALERT_DEPTH} events and its oldest"
                " event ages",
                expects=[camera, stale, outbox],
                inject=unlink,
                remove=relink,
                ready=ready_camera,
                # The outbox grows at the lab replay's pace (~0.5 event/s).
                fire_timeout=420,
                resolve_timeout=180,
            ),
            Fault(
                name="host-down",
                what=f"lab/lab cut {target}: its cable is unplugged",
                expects=[Expect("ParkingHostDown", {"instance": target})],
                inject=cut,
                remove=restore,
            ),
        ]

    # --- backup ------------------------------------------------------------------------

    def backup_faults(self) -> list[Fault]:
        repo = sorted(hosts("backup"))
        saved: dict[str, str] = {}
        target: dict[str, str] = {}

        def ready() -> str | None:
            for host in repo:
                text = sh(host, f"cat {BACKUP_METRICS} 2>/dev/null", check=False)
                if BACKUP_METRIC in text:
                    target["host"], saved["text"] = host, text
                    return None
            return f"no {BACKUP_METRICS} with {BACKUP_METRIC} on a backup host (no backup yet)"

        def write(text: str) -> None:
            sh(
                target["host"],
                f"cat > {BACKUP_METRICS}.drill && chmod 0644 {BACKUP_METRICS}.drill"
                f" && mv {BACKUP_METRICS}.drill {BACKUP_METRICS}",
                stdin=text,
            )

        def inject() -> None:
            old = int(time.time()) - 27 * 3600
            lines = [
                f"{line.rsplit(' ', 1)[0]} {old}" if line.startswith(BACKUP_METRIC + "{") else line
                for line in saved["text"].splitlines()
            ]
            self.cleanups.append(lambda: write(saved["text"]))
            write("\n".join(lines) + "\n")

        return [
            Fault(
                name="backup-too-old",
                what="the backup host's textfile metric says the last success was 27 h ago"
                " (restored after)",
                expects=[Expect("ParkingBackupTooOld")],
                inject=inject,
                remove=lambda: write(saved["text"]),
                ready=ready,
            )
        ]

    # --- quorum ----------------------------------------------------------------------------

    def quorum_fault(self) -> Fault:
        """etcd loses its quorum: the Patroni leader cannot renew its lock and demotes itself.
        Run alone (every write in the lab fails meanwhile), after the parallel lanes."""
        members = sorted(hosts("etcd"))
        stopped = members[: len(members) // 2 + 1]

        def has_leader() -> bool:
            return any(m["role"] == "leader" for m in self.patroni_members())

        def ready() -> str | None:
            if len(members) < 3:
                return "fewer than three etcd members"
            deadline = time.monotonic() + 90
            while not has_leader():
                if time.monotonic() > deadline:
                    return "the Patroni cluster has no leader before the fault"
                time.sleep(2)
            return None

        def start_etcd() -> None:
            for host in stopped:
                sh(host, "systemctl start etcd", check=False)

        def inject() -> None:
            self.cleanups.append(start_etcd)
            for host in stopped:
                sh(host, "systemctl stop etcd")

        lag = Expect("ParkingReplicationLag")

        def settled() -> None:
            """A leader, every replica streaming and no replication lag alert before anything
            else runs (a demoted leader rewinds and catches up after the election)."""
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                members = self.patroni_members()
                if (
                    len(members) == len(hosts("db"))
                    and any(m["role"] == "leader" for m in members)
                    and all(m["role"] == "leader" or m.get("state") == "streaming" for m in members)
                    and not self.active(lag)
                ):
                    return
                time.sleep(2)
            self.log("quorum: the Patroni cluster did not settle within 180 s")

        return Fault(
            name="patroni-no-leader",
            what=f"systemctl stop etcd on {', '.join(stopped)}: etcd loses its quorum and the"
            " Patroni leader demotes itself",
            expects=[Expect("ParkingPatroniNoLeader")],
            inject=inject,
            remove=start_etcd,
            finish=settled,
            ready=ready,
            fire_timeout=120,
            resolve_timeout=180,
        )

    # --- deadman ---------------------------------------------------------------------------

    def deadman_fault(self) -> Fault:
        watchdog = Expect("Watchdog")

        def inject() -> None:
            sh(self.mon, "systemctl stop prometheus")
            self.cleanups.append(lambda: sh(self.mon, "systemctl start prometheus"))

        return Fault(
            name="deadman",
            what=f"systemctl stop prometheus on {self.mon}: the Watchdog stops, Alertmanager "
            "resolves it (the deadman switch hears nothing)",
            expects=[watchdog],
            inject=inject,
            remove=lambda: sh(self.mon, "systemctl start prometheus"),
            fire_timeout=90,
        )

    def run_deadman(self) -> list[Result]:
        """Prometheus stopped: 'fired' is the Watchdog's resolved delivery (its heartbeat to the
        deadman stops), 'resolved' the first Watchdog delivery after Prometheus is back."""
        fault = self.deadman_fault()
        result = Result("Watchdog (deadman)", fault.what, {})
        self.log("inject deadman: stop prometheus")
        injected = time.time()
        try:
            fault.inject()
            limit = time.monotonic() + fault.fire_timeout
            while time.monotonic() < limit:
                at = self.recorder.find("Watchdog", {}, "resolved", injected)
                if at is not None:
                    result.fire_s = round(at - injected, 1)
                    break
                time.sleep(0.5)
            else:
                result.error = "Watchdog still reported alive with Prometheus stopped"
        finally:
            removed = time.time()
            fault.remove()
        limit = time.monotonic() + 90
        while result.fire_s is not None and time.monotonic() < limit:
            at = self.recorder.find("Watchdog", {}, "firing", removed)
            if at is not None:
                result.resolve_s = round(at - removed, 1)
                break
            time.sleep(0.5)
        else:
            if result.fire_s is not None:
                result.error = "no Watchdog delivery after Prometheus restarted"
        return [result]

    # --- the whole drill -------------------------------------------------------------------

    def lanes(self) -> dict[str, list[Fault]]:
        lanes = {
            "disk-low": [self.disk_fault("drill-disk-low", 0.15, "ParkingDiskFreeLow")],
            "disk-critical": [
                self.disk_fault("drill-disk-critical", 0.05, "ParkingDiskFreeCritical")
            ],
            "memory": [
                self.memory_fault("memory-high", MEMORY_HIGH_USED, "ParkingMemoryUsedHigh"),
                self.memory_fault(
                    "memory-critical", MEMORY_CRITICAL_USED, "ParkingMemoryUsedCritical"
                ),
            ],
            "cert-10d": [self.cert_fault(9443, 10, "ParkingCertificateExpiring")],
            "cert-2d": [self.cert_fault(9444, 2, "ParkingCertificateExpiringSoon")],
            "central": self.central_faults(),
            "db": self.db_faults(),
            "edge": self.edge_faults(),
            "backup": self.backup_faults(),
        }
        only = set(self.args.only.split(",")) if self.args.only else None
        return {
            lane: [f for f in faults if only is None or f.name in only]
            for lane, faults in lanes.items()
        }

    def run(self) -> list[Result]:
        lanes = [faults for faults in self.lanes().values() if faults]
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(lanes))) as pool:
                results = [r for rs in pool.map(self.run_lane, lanes) for r in rs]
            if not self.args.only or "patroni-no-leader" in self.args.only.split(","):
                results.extend(self.run_lane([self.quorum_fault()]))
            wanted = not self.args.only or "deadman" in self.args.only.split(",")
            if wanted and not self.args.no_deadman:
                results.extend(self.run_deadman())
        finally:
            self.cleanup()
            self.recorder.close()
        return results

    def cleanup(self) -> None:
        for action in reversed(self.cleanups):
            try:
                action()
            except Exception as error:
                self.log(f"cleanup: {error}")
        self.cleanups.clear()


def table(results: list[Result]) -> str:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        f"{'alert':<36} {'fire s':>7} {'resolve s':>9}  fault",
        f"{'-' * 36} {'-' * 7} {'-' * 9}  {'-' * 40}",
    ]
    for r in results:
        note = (
            f"  [skipped: {r.skipped}]"
            if r.skipped
            else f"  [FAILED: {r.error}]"
            if r.error
            else ""
        )
        lines.append(f"{r.alert:<36} {cell(r.fire_s):>7} {cell(r.resolve_s):>9}  {r.fault}{note}")
    return "\n".join(lines)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"drill stopped by signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated fault names (see --list)")
    parser.add_argument("--no-deadman", action="store_true", help="keep Prometheus running")
    parser.add_argument("--list", action="store_true", help="print the faults and exit")
    args = parser.parse_args()
    # SIGTERM (a test's timeout, Ctrl-C in a pipeline) unwinds like an exception, so the
    # faults' cleanups run and the lab is not left with a fault injected.
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    drill = Drill(args)
    if args.list:
        for lane, faults in drill.lanes().items():
            for f in faults:
                print(f"{f.name:<22} {lane:<14} {', '.join(e.alert for e in f.expects)}")
        print(f"{'patroni-no-leader':<22} {'alone':<14} ParkingPatroniNoLeader")
        print(f"{'deadman':<22} {'last':<14} Watchdog")
        drill.recorder.close()
        return 0
    results = drill.run()
    print(table(results))
    ran = [r for r in results if r.skipped is None]
    summary = {
        "expected": len(ran),
        "fired": sum(r.fire_s is not None for r in ran),
        "resolved": sum(r.resolve_s is not None for r in ran),
        "skipped": {r.alert: r.skipped for r in results if r.skipped},
        "failures": {r.alert: r.error for r in results if r.error},
        "alerts": {
            r.alert: {
                "fault": r.fault,
                "labels": r.labels,
                "fire_s": r.fire_s,
                "resolve_s": r.resolve_s,
            }
            for r in ran
        },
        "total_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))
    return 0 if summary["fired"] == summary["resolved"] == summary["expected"] else 1


if __name__ == "__main__":
    sys.exit(main())

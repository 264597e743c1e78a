"""The soak (bench/soak.py): traffic from every lane of the lab while a seeded nemesis injects
faults, one tier at a time, and the invariants checked from the systems' own records.

bench/soak.py prints the figures; tests/lab/test_soak.py asserts them on a short fixed-seed run.
The bench's docstring and docs/soak.md describe what runs and why.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from support import lab_db
from support.lab_cli import lab
from support.lab_edge import EdgeHost, central_python, uuid7_ms
from support.lab_tier import (
    DUTIES_SILENT_S,
    REPO,
    Cameras,
    LiveClient,
    OperatorLogin,
    Probe,
    Simulator,
    Tier,
    ca_context,
    count_stored,
    log,
    make_cameras,
    operator_token,
    reset_outgoing,
    sh,
    stop_resetting,
    wait_for,
)


@dataclass(frozen=True)
class Options:
    """What bench/soak.py's command line sets (its --help says each)."""

    minutes: float
    seed: int
    rate: float = 5.0
    probe_rate: float = 2.0
    gap: tuple[float, float] = (15.0, 45.0)
    only: str = ""
    sample_s: float = 60.0
    converge_timeout: float = 600.0
    opens_per_s: float = 0.5
    spare: str = ""


ALERTMANAGER_PORT = 9093
PROMETHEUS_PORT = 9090
EDGE_UNIT = "parking-edge"
EDGE_STATE_DIR = "/var/lib/parking-edge"
# The edge disk fault: the agent's state directory moves onto a loop-mounted ext4 image of its
# own for the soak (the lab's root file systems are overlays on the machine's disk, which no one
# may fill). The unit mounts it at every boot, before the agent, so a crashed edge comes back on it.
DISK_DIR = REPO / ".lab" / "soak"
DISK_UNIT = "parking-soak-disk"
DISK_DEVICE = "/dev/parking-soak"
DISK_SPARE_MB = 48
FILL = f"{EDGE_STATE_DIR}/soak-fill"
SLOW_TRIGGER = "parking_soak_slow"
SLOW_SLEEP_S = 0.2
# Seconds after the start before the first fault (traffic and the live feed settle).
FIRST_FAULT_S = (10.0, 20.0)
RECOVER_TIMEOUT_S = 240.0
# systemd gets this long to restart a killed unit before the soak starts it itself.
KILL_RESTART_WAIT_S = 12.0
# Alerts that say nothing about the soak's faults.
IGNORED_ALERTS = {"Watchdog", "InfoInhibitor"}

RESOURCE_SCRIPT = r"""
pid=$(systemctl show -p MainPID --value UNIT)
[ "${pid:-0}" -gt 0 ] || { echo 0 0 0; exit 0; }
rss=0; fds=0
for p in $pid $(pgrep -P $pid); do
  r=$(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null)
  f=$(ls /proc/$p/fd 2>/dev/null | wc -l)
  rss=$((rss + ${r:-0})); fds=$((fds + f))
done
echo $pid $rss $fds
"""

DISK_ATTACH = r"""
set -e
systemctl stop parking-edge
test -b DEVICE || mknod DEVICE b MAJOR MINOR
mkdir -p /run/parking-soak-new
mount DEVICE /run/parking-soak-new
cp -a STATE/. /run/parking-soak-new/
chown --reference=STATE /run/parking-soak-new
chmod --reference=STATE /run/parking-soak-new
umount /run/parking-soak-new
cat > /etc/systemd/system/UNIT.service <<'EOF'
# Written by bench/soak.py (the edge disk fault); removed when the soak ends.
[Unit]
Description=Soak: the edge agent's state on a small disk of its own
DefaultDependencies=no
After=local-fs.target
Before=parking-edge.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'test -b DEVICE || mknod DEVICE b MAJOR MINOR'
ExecStart=/bin/sh -c 'mountpoint -q STATE || mount DEVICE STATE'

[Install]
RequiredBy=parking-edge.service
EOF
systemctl daemon-reload
systemctl enable UNIT.service
systemctl restart UNIT.service
mountpoint -q STATE
systemctl start parking-edge
"""

DISK_DETACH = r"""
systemctl stop parking-edge
systemctl stop UNIT.service 2>/dev/null
systemctl disable UNIT.service 2>/dev/null
rm -f /etc/systemd/system/UNIT.service
systemctl daemon-reload
if mountpoint -q STATE; then
  mkdir -p /run/parking-soak-old
  mount DEVICE /run/parking-soak-old 2>/dev/null || mount --bind STATE /run/parking-soak-old
  umount STATE
  find STATE -mindepth 1 -delete
  cp -a /run/parking-soak-old/. STATE/
  rm -rf STATE/lost+found STATE/soak-fill*
  umount /run/parking-soak-old
fi
rm -f DEVICE
systemctl reset-failed parking-edge 2>/dev/null
systemctl start parking-edge
"""


def fill(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def run(argv: list[str], check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]}")
    return done.stdout


def psql(host: str, sql: str) -> str:
    """SQL as postgres on a db host (its own socket)."""
    return lab(
        "exec", host, "runuser", "-u", "postgres", "--",
        "psql", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", "parking",
        stdin=sql, timeout=60,
    )  # fmt: skip


def unit_state(host: str, unit: str) -> tuple[str, int]:
    out = sh(host, f"systemctl show -p ActiveState -p NRestarts {unit}", check=False, timeout=20)
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return values.get("ActiveState", ""), int(values.get("NRestarts") or 0)


def unit_active(host: str, unit: str) -> bool:
    return unit_state(host, unit)[0] == "active"


# -- the lab's parts -----------------------------------------------------------------------------


@dataclass
class Lab:
    tier: Tier
    dbs: dict[str, str]
    edges: dict[str, EdgeHost]
    mon: str

    @classmethod
    def from_inventory(cls) -> Lab:
        def names(pattern: str) -> dict[str, str]:
            rows = (line.split() for line in lab("hosts", pattern).splitlines() if line.strip())
            return {row[0]: row[1] for row in rows}

        edges = {name: EdgeHost(name) for name in sorted(names("edge"))}
        return cls(Tier.from_inventory(), lab_db.db_hosts(), edges, next(iter(names("monitoring"))))

    @property
    def mon_address(self) -> str:
        rows = (line.split() for line in lab("hosts", self.mon).splitlines() if line.strip())
        return next(row[1] for row in rows)

    def hosts_of(self, tier: str) -> list[str]:
        return {
            "central": sorted(self.tier.centrals),
            "lb": sorted(self.tier.lbs),
            "db": sorted(self.dbs),
            "edge": sorted(self.edges),
        }[tier]

    def tier_of(self, host: str) -> str:
        return next(t for t in TIERS if host in self.hosts_of(t))

    def soak_hosts(self) -> list[str]:
        return [h for t in TIERS for h in self.hosts_of(t)] + [self.mon]

    def lb_ok(self, host: str) -> bool:
        healthz = sh(
            host, "curl -fsS --max-time 1 http://127.0.0.1:8081/healthz", check=False, timeout=20
        )
        return healthz.startswith("ok") and unit_active(host, "keepalived")

    def vip_ok(self) -> bool:
        holders = self.tier.vip_holders()
        return len(holders) == 1 and self.lb_ok(holders[0]) and self.tier.vip_ready()

    def db_ok(self) -> bool:
        return lab_db.healthy(self.dbs)

    def member_ok(self, host: str) -> bool:
        """The member's own Patroni answers that its PostgreSQL runs (the cluster view alone may
        still list a crashed member until its key expires)."""
        return lab_db.rest(self.dbs[host], "/health") == 200

    def edge_ok(self, host: str) -> bool:
        return unit_active(host, EDGE_UNIT)

    def host_ok(self, host: str) -> bool:
        """The host's own tier serves again (what a fault of it waits for)."""
        tier = self.tier_of(host)
        if tier == "central":
            return self.tier.central_ready(host)
        if tier == "lb":
            return self.lb_ok(host) and self.vip_ok()
        if tier == "db":
            return self.member_ok(host) and self.db_ok()
        return self.edge_ok(host)

    def firing_alerts(self, cameras: set[str] | None = None) -> set[str]:
        """Alerts Alertmanager holds active (not silenced, not inhibited), as name{labels};
        with ``cameras``, an alert about another camera (an earlier bench's simulated camera,
        silent since it ended) is none of the soak's business and left out."""
        url = f"http://{self.mon_address}:{ALERTMANAGER_PORT}/api/v2/alerts"
        params = {"active": "true", "silenced": "false", "inhibited": "false"}
        alerts = httpx.get(url, params=params, timeout=5).json()
        return {
            a["labels"].get("alertname", "")
            + "{"
            + ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k != "alertname")
            + "}"
            for a in alerts
            if a.get("status", {}).get("state") == "active"
            and a["labels"].get("alertname") not in IGNORED_ALERTS
            and (cameras is None or a["labels"].get("camera", next(iter(cameras))) in cameras)
        }

    def prometheus(self, expr: str) -> float | None:
        url = f"http://{self.mon_address}:{PROMETHEUS_PORT}/api/v1/query"
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError):
            rows = httpx.get(url, params={"query": expr}, timeout=5).json()["data"]["result"]
            return float(rows[0]["value"][1]) if rows else 0.0
        return None

    def sessions_open_twice(self) -> list[str]:
        with self.tier.database() as db:
            rows = db.execute(
                "SELECT lot_id, plate_normalized, count(*) FROM parking_sessions"
                " WHERE status = 'open' GROUP BY lot_id, plate_normalized HAVING count(*) > 1"
            ).fetchall()
        return [f"{lot}/{plate} x{n}" for lot, plate, n in rows]


TIERS = ("central", "lb", "db", "edge")
# A process's first ten minutes are its warm-up for the settled growth figures.
SETTLE_S = 600.0

# The cable between the load balancers: every packet between them dropped, both ways, from a
# table of the soak's own (common's ruleset and the drills' table are left alone).
SPLIT_TABLE = "parking_soak_split"


def split(host: str, peers: list[str]) -> None:
    rules = " && ".join(
        f"nft add rule inet {SPLIT_TABLE} inp ip saddr {peer} drop && "
        f"nft add rule inet {SPLIT_TABLE} out ip daddr {peer} drop"
        for peer in peers
    )
    sh(
        host,
        f"nft delete table inet {SPLIT_TABLE} 2>/dev/null; nft add table inet {SPLIT_TABLE} && "
        f"nft add chain inet {SPLIT_TABLE} inp '{{ type filter hook input priority -10; }}' && "
        f"nft add chain inet {SPLIT_TABLE} out '{{ type filter hook output priority -10; }}' && "
        f"{rules}",
    )


def unsplit(host: str) -> None:
    sh(host, f"nft delete table inet {SPLIT_TABLE}", check=False)


# -- the edges' own disk -------------------------------------------------------------------------


def attach_disk(edge: str) -> None:
    """The agent's state directory on a loop-mounted ext4 image of its own (its data copied)."""
    detach_disk(edge)
    used_mb = int(sh(edge, f"du -sm {EDGE_STATE_DIR} | cut -f1").strip() or 0)
    DISK_DIR.mkdir(parents=True, exist_ok=True)
    image = DISK_DIR / f"{edge}.img"
    run(["truncate", "-s", f"{used_mb + DISK_SPARE_MB}M", str(image)])
    run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)])
    loop = run(["losetup", "-f", "--show", str(image)]).strip()
    major, minor = Path(f"/sys/block/{Path(loop).name}/dev").read_text().strip().split(":")
    script = fill(
        DISK_ATTACH,
        DEVICE=DISK_DEVICE,
        MAJOR=major,
        MINOR=minor,
        STATE=EDGE_STATE_DIR,
        UNIT=DISK_UNIT,
    )
    lab("exec", edge, "sh", "-c", script, timeout=180)
    wait_for(lambda: unit_active(edge, EDGE_UNIT), f"{EDGE_UNIT} on {edge} back on its disk", 120)


def detach_disk(edge: str) -> None:
    """Back to the root file system, the agent's state copied back; the image removed."""
    script = fill(DISK_DETACH, DEVICE=DISK_DEVICE, STATE=EDGE_STATE_DIR, UNIT=DISK_UNIT)
    if "mounted" in sh(
        edge,
        f"mountpoint -q {EDGE_STATE_DIR} && echo mounted; test -e /etc/systemd/system/"
        f"{DISK_UNIT}.service && echo mounted; true",
        timeout=20,
    ):
        lab("exec", edge, "sh", "-c", script, timeout=180)
    image = DISK_DIR / f"{edge}.img"
    for line in run(["losetup", "-j", str(image)], check=False).splitlines():
        run(["losetup", "-d", line.split(":")[0]], check=False)
    image.unlink(missing_ok=True)


# -- the edges' own clock ------------------------------------------------------------------------

# lab/clockshift.c, preloaded into the agent by a drop-in: its wall clock is the machine's plus
# the offset in CLOCK_FILE (nanoseconds; missing: 0, so a crashed host boots with a right clock).
CLOCKSHIFT_SO = "/usr/local/lib/parking-soak/clockshift.so"
CLOCK_FILE = "/run/parking-soak/clock-offset-ns"
CLOCK_DROPIN = f"/etc/systemd/system/{EDGE_UNIT}.service.d/90-soak-clock.conf"


def build_clockshift(work: Path) -> Path:
    out = work / "clockshift.so"
    run(["cc", "-O2", "-shared", "-fPIC", "-o", str(out), str(REPO / "lab" / "clockshift.c"),
         "-ldl"])  # fmt: skip
    return out


def attach_clock(edge: str, library: Path) -> None:
    """The agent restarted with its wall clock steppable (offset 0 until a fault steps it)."""
    lab(
        "exec", edge, "sh", "-c",
        f"mkdir -p {Path(CLOCKSHIFT_SO).parent} && base64 -d > {CLOCKSHIFT_SO}.new && "
        f"mv {CLOCKSHIFT_SO}.new {CLOCKSHIFT_SO}",
        stdin=base64.b64encode(library.read_bytes()).decode(),
    )  # fmt: skip
    sh(
        edge,
        f"mkdir -p {Path(CLOCK_DROPIN).parent} {Path(CLOCK_FILE).parent} && echo 0 > {CLOCK_FILE}"
        f" && printf '[Service]\\nEnvironment=LD_PRELOAD={CLOCKSHIFT_SO}"
        f" CLOCKSHIFT_FILE={CLOCK_FILE}\\n' > {CLOCK_DROPIN}"
        f" && systemctl daemon-reload && systemctl restart {EDGE_UNIT}",
        timeout=180,
    )
    wait_for(lambda: unit_active(edge, EDGE_UNIT), f"{EDGE_UNIT} on {edge} with its clock", 120)


def detach_clock(edge: str) -> None:
    sh(
        edge,
        f"if test -e {CLOCK_DROPIN}; then rm -f {CLOCK_DROPIN} {CLOCK_FILE} && "
        f"systemctl daemon-reload && systemctl restart {EDGE_UNIT}; fi; rm -f {CLOCKSHIFT_SO}",
        timeout=180,
    )


def set_clock_offset(edge: str, seconds: float) -> None:
    # /run is empty again after a crash of the host (found by the soak): made here each time.
    sh(
        edge,
        f"mkdir -p {Path(CLOCK_FILE).parent} && echo {int(seconds * 1e9)} > {CLOCK_FILE}.new"
        f" && mv {CLOCK_FILE}.new {CLOCK_FILE}",
    )


# -- the nemesis ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    at_s: float
    kind: str
    target: str
    tier: str
    hold_s: float
    step_s: float = 0.0  # clock-step-edge: the step, seconds (negative: back)

    def line(self) -> str:
        step = f" step {self.step_s:+.1f}s" if self.step_s else ""
        return (
            f"{self.at_s:7.1f}s {self.tier:<7} {self.kind:<16} {self.target:<9} {self.hold_s:5.1f}s"
            + step
        )


@dataclass
class Done:
    planned: Planned
    started_s: float | None = None
    healed_s: float | None = None  # the fault removed (process killed and restarted, cable back)
    recovered_s: float | None = None  # seconds from healed until its component served again
    restarted_by: str | None = None  # kill -9: "systemd" or "soak"
    vip_holders_max: int | None = None  # cut-lb-lb: the most hosts seen holding the VIP at once
    skipped: str | None = None
    error: str | None = None


# kind -> (tier or None for the target host's own, hold time range in seconds)
KINDS: dict[str, tuple[str | None, tuple[float, float]]] = {
    "kill9-central": ("central", (4.0, 8.0)),
    "kill9-edge": ("edge", (4.0, 8.0)),
    "kill9-patroni": ("db", (4.0, 8.0)),
    "kill9-etcd": ("db", (4.0, 8.0)),
    "kill9-nginx": ("lb", (4.0, 8.0)),
    "kill9-keepalived": ("lb", (4.0, 8.0)),
    "crash-host": (None, (5.0, 15.0)),
    "cut-edge": ("edge", (10.0, 40.0)),
    "cut-central-db": ("central", (10.0, 30.0)),
    "disk-full-edge": ("edge", (15.0, 30.0)),
    "slow-db": ("db", (20.0, 40.0)),
    "cut-lb-lb": ("lb", (10.0, 30.0)),
    "clock-step-edge": ("edge", (20.0, 60.0)),
}
# The edge clock's step, seconds either way: within the 5 minutes a captured_at may lie ahead of
# central's clock (app/contract/v1.py); a step beyond it is refused by the contract (docs/soak.md).
CLOCK_STEP_S = (15.0, 240.0)
KILL_UNITS = {
    "kill9-central": "parking-central",
    "kill9-edge": EDGE_UNIT,
    "kill9-patroni": "patroni",
    "kill9-etcd": "etcd",
    "kill9-nginx": "nginx",
    "kill9-keepalived": "keepalived",
}


# The tier whose service process a kill -9 restarts (--spare leaves those kinds out).
KILL_TIER = {"kill9-central": "central", "kill9-edge": "edge"}


def plan(
    rng: random.Random,
    lab_: Lab,
    seconds: float,
    gap: tuple[float, float],
    kinds: list[str],
    spare: tuple[str, ...] = (),
) -> list[Planned]:
    """The seeded schedule: a fault every ``gap`` seconds, kind, target and hold drawn from
    ``rng`` in that order (same seed and inventory, same schedule). ``spare``: tiers or single
    hosts whose service processes no fault restarts (no kill -9 of their unit, no crash of the
    host), so they live the whole run and their memory's growth is measured over hours
    (``--spare``). A spared host still gets every other fault (cables, disk, clock), and its
    tier's other hosts still get the kills, so one run both proves the kills and measures the
    memory."""
    tiers = {s for s in spare if s in TIERS}
    hosts = {s for s in spare if s not in TIERS}
    if tiers:
        kinds = [k for k in kinds if KILL_TIER.get(k) not in tiers]
    crashable = [h for t in TIERS if t not in tiers for h in lab_.hosts_of(t) if h not in hosts]
    out: list[Planned] = []
    at = rng.uniform(*FIRST_FAULT_S)
    while at < seconds:
        kind = rng.choice(kinds)
        tier, hold = KINDS[kind]
        if kind == "crash-host":
            target = rng.choice(crashable)
        elif kind == "slow-db":
            target = "leader"
        elif kind == "cut-lb-lb":
            target = "+".join(lab_.hosts_of("lb"))
        else:
            assert tier is not None
            pool = lab_.hosts_of(tier)
            if kind in KILL_TIER:
                pool = [h for h in pool if h not in hosts]
            target = rng.choice(pool)
        tier = tier or lab_.tier_of(target)
        hold_s = round(rng.uniform(*hold), 1)
        step_s = 0.0
        if kind == "clock-step-edge":
            step_s = round(rng.choice((-1, 1)) * rng.uniform(*CLOCK_STEP_S), 1)
        out.append(Planned(round(at, 1), kind, target, tier, hold_s, step_s))
        at += rng.uniform(*gap)
    return out


def spared(lab_: Lab, text: str) -> tuple[str, ...]:
    """``--spare``: ``central``/``edge`` (the tier) or some of their hosts (``central1,edge1``);
    naming every host of a tier spares the tier."""
    items = {t.strip() for t in text.split(",") if t.strip()}
    allowed = {*KILL_TIER.values(), *(h for t in KILL_TIER.values() for h in lab_.hosts_of(t))}
    if items - allowed:
        raise SystemExit(
            f"soak: --spare takes central, edge or their hosts ({', '.join(sorted(allowed))}),"
            f" not {', '.join(sorted(items - allowed))}"
        )
    out: list[str] = []
    for tier in KILL_TIER.values():
        hosts = [h for h in lab_.hosts_of(tier) if h in items]
        out += [tier] if tier in items or hosts == lab_.hosts_of(tier) else hosts
    return tuple(out)


class Nemesis:
    def __init__(self, lab_: Lab, schedule: list[Planned], started: float, window_s: float):
        self.lab, self.schedule, self.started, self.window_s = lab_, schedule, started, window_s
        self.done: list[Done] = []
        self.stop = threading.Event()
        self.cleanups: dict[str, Callable[[], object]] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._lane, args=(tier,), daemon=True) for tier in TIERS
        ]

    def now(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _lane(self, tier: str) -> None:
        """One tier's faults in their planned order, never two at once."""
        for planned in (p for p in self.schedule if p.tier == tier):
            record = Done(planned)
            with self._lock:
                self.done.append(record)
            while self.now() < planned.at_s and not self.stop.is_set():
                self.stop.wait(min(1.0, planned.at_s - self.now()))
            if self.stop.is_set() or self.now() >= self.window_s:
                record.skipped = "after the traffic window" if not self.stop.is_set() else "stop"
                continue
            record.started_s = round(self.now(), 1)
            log(f"fault {planned.kind} {planned.target} (hold {planned.hold_s} s)")
            try:
                self.inject(planned, record)
            except Exception as exc:  # one broken fault must not end the soak
                record.error = f"{type(exc).__name__}: {exc}"[:300]
                log(f"fault {planned.kind} {planned.target}: {record.error}")
            finally:
                self.heal_leftover(planned)
            if record.healed_s is None:
                record.healed_s = round(self.now(), 1)

    def heal_leftover(self, planned: Planned) -> None:
        key = f"{planned.kind}:{planned.target}"
        with self._lock:
            cleanup = self.cleanups.pop(key, None)
        if cleanup is not None:
            with contextlib.suppress(Exception):
                cleanup()

    def heal_all(self) -> None:
        with self._lock:
            cleanups = list(self.cleanups.values())
            self.cleanups.clear()
        for cleanup in cleanups:
            with contextlib.suppress(Exception):
                cleanup()

    def _until_back(self, record: Done, back: Callable[[], bool], what: str) -> None:
        record.healed_s = round(self.now(), 1)
        record.recovered_s = round(wait_for(back, what, RECOVER_TIMEOUT_S), 1)

    def inject(self, p: Planned, record: Done) -> None:
        key = f"{p.kind}:{p.target}"
        lab_ = self.lab
        if p.kind in KILL_UNITS:
            unit = KILL_UNITS[p.kind]
            host = p.target
            _, before = unit_state(host, unit)
            sh(host, f"systemctl kill --signal=SIGKILL {unit}")
            self.stop.wait(p.hold_s)
            deadline = time.monotonic() + max(0.0, KILL_RESTART_WAIT_S - p.hold_s)
            while time.monotonic() < deadline:
                state, restarts = unit_state(host, unit)
                if state == "active" and restarts > before:
                    break
                time.sleep(0.5)
            state, restarts = unit_state(host, unit)
            if state == "active" and restarts > before:
                record.restarted_by = "systemd"
            else:
                record.restarted_by = "soak"
                sh(host, f"systemctl reset-failed {unit} 2>/dev/null; systemctl start {unit}")
            back = {
                "parking-central": lambda: lab_.tier.central_ready(host),
                EDGE_UNIT: lambda: lab_.edge_ok(host),
                "patroni": lambda: lab_.member_ok(host) and lab_.db_ok(),
                "etcd": lambda: unit_active(host, "etcd") and lab_.db_ok(),
                "nginx": lambda: lab_.lb_ok(host) and lab_.vip_ok(),
                "keepalived": lambda: lab_.lb_ok(host) and lab_.vip_ok(),
            }[unit]
            self._until_back(record, back, f"{unit} on {host} back")
        elif p.kind == "crash-host":
            self.cleanups[key] = lambda: lab("poweron", p.target, timeout=300)
            lab("crash", p.target)
            self.stop.wait(p.hold_s)
            lab("poweron", p.target, timeout=300)
            self.cleanups.pop(key, None)
            self._until_back(record, lambda: lab_.host_ok(p.target), f"{p.target} back")
        elif p.kind == "cut-edge":
            self.cleanups[key] = lambda: lab("restore", p.target)
            lab("cut", p.target)
            self.stop.wait(p.hold_s)
            lab("restore", p.target)
            self.cleanups.pop(key, None)
            self._until_back(record, lambda: lab_.edge_ok(p.target), f"{p.target} back")
        elif p.kind == "cut-central-db":
            self.cleanups[key] = lambda: stop_resetting(p.target)
            reset_outgoing(p.target, "tcp dport 5432")
            self.stop.wait(p.hold_s)
            stop_resetting(p.target)
            self.cleanups.pop(key, None)
            self._until_back(record, lambda: lab_.tier.central_ready(p.target), f"{p.target} ready")
        elif p.kind == "disk-full-edge":
            self.cleanups[key] = lambda: sh(p.target, f"rm -f {FILL}*")
            # Only a disk of the soak's own: never the lab's root, which is the machine's disk.
            sh(
                p.target,
                f"mountpoint -q {EDGE_STATE_DIR} && "
                f"avail=$(df -B1 --output=avail {EDGE_STATE_DIR} | tail -1) && "
                f"fallocate -l $((avail > 1048576 ? avail - 1048576 : 4096)) {FILL} && "
                f"(dd if=/dev/zero of={FILL}2 bs=4k 2>/dev/null; true)",
            )
            self.stop.wait(p.hold_s)
            sh(p.target, f"rm -f {FILL}*")
            self.cleanups.pop(key, None)
            self._until_back(record, lambda: lab_.edge_ok(p.target), f"{p.target} back")
        elif p.kind == "cut-lb-lb":
            lbs = self.lab.hosts_of("lb")

            def heal_split() -> None:
                for lb in lbs:
                    unsplit(lb)

            self.cleanups[key] = heal_split
            for lb in lbs:
                split(lb, [self.lab.tier.lbs[peer] for peer in lbs if peer != lb])
            # Split brain: with no adverts from its peer each lb believes itself alone, and
            # both may claim the VIP. The design tolerates that (both proxy to the same
            # centrals); what it must not do is keep it after the link is back.
            deadline = time.monotonic() + p.hold_s
            most = 0
            while time.monotonic() < deadline and not self.stop.is_set():
                with contextlib.suppress(Exception):
                    most = max(most, len(self.lab.tier.vip_holders()))
                self.stop.wait(2.0)
            record.vip_holders_max = most
            heal_split()
            self.cleanups.pop(key, None)
            self._until_back(record, lab_.vip_ok, "one VIP holder again")
        elif p.kind == "clock-step-edge":
            self.cleanups[key] = lambda: set_clock_offset(p.target, 0.0)
            set_clock_offset(p.target, p.step_s)
            self.stop.wait(p.hold_s)
            set_clock_offset(p.target, 0.0)  # and back: the opposite step
            self.cleanups.pop(key, None)
            self._until_back(record, lambda: lab_.edge_ok(p.target), f"{p.target} back")
        elif p.kind == "slow-db":
            self.cleanups[key] = self.fast_db
            self.slow_db()
            self.stop.wait(p.hold_s)
            self.fast_db()
            self.cleanups.pop(key, None)
            record.healed_s = round(self.now(), 1)
            record.recovered_s = 0.0
        else:
            raise ValueError(f"unknown fault {p.kind}")

    def slow_db(self) -> None:
        leader = lab_db.leader(self.lab.dbs)
        if leader is None:
            raise RuntimeError("no Patroni leader for the slow trigger")
        psql(
            leader,
            f"CREATE OR REPLACE FUNCTION {SLOW_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_sleep({SLOW_SLEEP_S}); RETURN NEW; END $$;\n"
            f"DROP TRIGGER IF EXISTS {SLOW_TRIGGER} ON plate_events;\n"
            f"CREATE TRIGGER {SLOW_TRIGGER} BEFORE INSERT ON plate_events"
            f" FOR EACH ROW EXECUTE FUNCTION {SLOW_TRIGGER}();\n",
        )

    def fast_db(self) -> None:
        """The slow trigger made harmless at once, then dropped, on whichever member leads now.

        Dropping a trigger takes the table's strongest lock, which waits behind every insert in
        flight, and with the trigger on an insert of a full batch sleeps for seconds: the 2-hour
        run's heal waited 60 s, timed out and left the database slow for good (nothing
        converged after it). So the function's body is first replaced by a no-op (that takes
        only the function's own lock: the next insert runs fast), then the trigger and the
        function are dropped, each try waiting at most 2 s for the table's lock."""
        deadline = time.monotonic() + 180
        while True:
            leader = lab_db.leader(self.lab.dbs)
            try:
                if leader is None:
                    raise RuntimeError("no leader")
                psql(
                    leader,
                    f"CREATE OR REPLACE FUNCTION {SLOW_TRIGGER}() RETURNS trigger"
                    " LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n",
                )
                psql(
                    leader,
                    "SET lock_timeout = '2s';\n"
                    f"DROP TRIGGER IF EXISTS {SLOW_TRIGGER} ON plate_events;\n"
                    f"DROP FUNCTION IF EXISTS {SLOW_TRIGGER}();\n",
                )
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)


# -- the operators' manual opens and what the barriers did ---------------------------------------


class Opener(threading.Thread):
    """A guard opening the lab edges' lanes by hand through the VIP (docs/lane.md), one every
    1-3 s on average; every fifth with an expiry it cannot meet (``ttl_s`` 0.01: it must never
    pulse). Its own seeded random, so the nemesis' schedule is the same with or without it."""

    def __init__(
        self, tier: Tier, token: str | httpx.Auth, lanes: list[str], per_s: float, seed: int
    ) -> None:
        super().__init__(daemon=True)
        self.tier, self.token, self.lanes, self.per_s = tier, token, lanes, per_s
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.sent: list[tuple[str, str, bool]] = []  # (command id, lane, meant to succeed)
        self.refused: list[str] = []  # an answer other than 202, or none

    def run(self) -> None:
        n = 0
        with operator_client(self.tier, self.token) as client:
            while not self.stop_event.wait(self.rng.uniform(0.5, 1.5) / self.per_s):
                n += 1
                meant = n % 5 != 0
                lane = self.rng.choice(self.lanes)
                body: dict[str, Any] = {"reason": f"soak open {n}"}
                if not meant:
                    body["ttl_s"] = SHORT_TTL_S
                try:
                    answer = client.post(f"/api/v1/cameras/{lane}/open", json=body)
                except httpx.HTTPError as exc:
                    self.refused.append(type(exc).__name__)
                    continue
                if answer.status_code != 202:
                    self.refused.append(str(answer.status_code))
                    continue
                self.sent.append((str(answer.json()["id"]), lane, meant))


class Cashier(threading.Thread):
    """A cashier paying every held exit of the simulator's lot (which has a tariff for the soak,
    so its exits are held until paid) about a second after it is held, through the VIP."""

    def __init__(self, tier: Tier, token: str | httpx.Auth, lot: str) -> None:
        super().__init__(daemon=True)
        self.tier, self.token, self.lot = tier, token, lot
        self.stop_event = threading.Event()
        self.paid: set[int] = set()
        self.errors: list[str] = []

    def run(self) -> None:
        first_seen: dict[int, float] = {}
        with operator_client(self.tier, self.token) as client:
            while not self.stop_event.wait(1.0):
                try:
                    answer = client.get(
                        "/api/v1/sessions",
                        params={"status": "open", "lot_id": self.lot, "limit": 500},
                    )
                    answer.raise_for_status()
                    now = time.monotonic()
                    for session in answer.json():
                        sid = int(session["id"])
                        if not session.get("exit_held_at") or sid in self.paid:
                            continue
                        if now - first_seen.setdefault(sid, now) < 1.0:
                            continue
                        paid = client.post(
                            f"/api/v1/sessions/{sid}/payments", json={"method": "cash"}
                        )
                        if paid.status_code in (201, 409):  # 409: paid already (a retry)
                            self.paid.add(sid)
                        else:
                            self.errors.append(str(paid.status_code))
                except httpx.HTTPError as exc:  # a fault on the way: the next round tries again
                    self.errors.append(type(exc).__name__)


def put_tariff(tier: Tier, token: str, lot: str) -> None:
    """No free minutes: every exit of the lot owes something and is held until paid."""
    with operator_client(tier, token) as client:
        for vehicle_type in ("car", "motorbike", "truck", "bus", "unknown"):
            client.put(
                "/api/v1/tariffs",
                json={"lot_id": lot, "vehicle_type": vehicle_type, "free_minutes": 0,
                      "hourly_rate": 25_000, "daily_cap": 200_000},
            ).raise_for_status()  # fmt: skip


def operator_client(tier: Tier, token: str | httpx.Auth) -> httpx.Client:
    """An operator's HTTPS client to central through the VIP (the lab's CA; a token, or an
    ``OperatorLogin`` that renews its own)."""
    auth = token if isinstance(token, httpx.Auth) else None
    return httpx.Client(
        base_url=tier.url,
        verify=ca_context(),
        timeout=httpx.Timeout(10, connect=2),
        headers=None if auth else {"Authorization": f"Bearer {token}"},
        auth=auth,
    )


SHORT_TTL_S = 0.01
PULSE = re.compile(r"gate: relay pulse .*?\b(event|command):([0-9a-f-]{36})")
OFFLINE_OPEN = re.compile(
    r"gate: central silent for ([0-9a-f-]{36}) .*offline decision by .*: open"
)


def edge_pulses(host: str, since_unix: float) -> tuple[list[tuple[str, float]], set[str]]:
    """The relay pulses an edge's agent logged since ``since_unix`` (cause, wall-clock time
    of the journal entry) and the events it opened alone while central was silent."""
    out = sh(
        host,
        f"journalctl -u {EDGE_UNIT} --since @{int(since_unix)} -o json --no-pager "
        "| grep -E 'relay pulse|offline decision' || true",
        timeout=120,
    )
    pulses: list[tuple[str, float]] = []
    offline_open: set[str] = set()
    for line in out.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            message = entry.get("MESSAGE")
            if not isinstance(message, str):
                continue
            at = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
            if (m := PULSE.search(message)) is not None:
                pulses.append((f"{m.group(1)}:{m.group(2)}", at))
            elif (m := OFFLINE_OPEN.search(message)) is not None:
                offline_open.add(m.group(1))
    return pulses, offline_open


def gate_figures(
    lab_: Lab, opener: Opener, since_unix: float, cameras: list[str]
) -> dict[str, Any]:
    """What the lab edges' barriers did, from their agents' journals, against central's
    records: no cause pulsed twice, no command after its expiry, no short-expiry open at all,
    every open meant to succeed pulsed once or reported expired/failed, and no event pulsed
    that neither central nor the lane's own offline rules opened."""
    pulses: list[tuple[str, float]] = []
    offline_open: set[str] = set()
    for host in lab_.edges:
        p, o = edge_pulses(host, since_unix)
        pulses += p
        offline_open |= o
    by_cause = Counter(cause for cause, _ in pulses)
    first: dict[str, float] = {}
    for cause, at in sorted(pulses, key=lambda p: p[1]):
        first.setdefault(cause, at)
    command_ids = {c.removeprefix("command:") for c in by_cause if c.startswith("command:")}
    command_ids |= {cid for cid, _, _ in opener.sent}
    since = datetime.fromtimestamp(since_unix, UTC)
    with lab_.tier.database() as db:
        # A command still open (its expiry + slack not yet passed the expiry duty) settles first.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            row = db.execute(
                "SELECT count(*) FROM lane_commands WHERE id = ANY(%s::uuid[])"
                " AND status IN ('pending', 'delivered')",
                ([cid for cid, _, _ in opener.sent],),
            ).fetchone()
            if row is None or row[0] == 0:
                break
            time.sleep(3)
        commands = {
            str(cid): (status, expires_at)
            for cid, status, expires_at in db.execute(
                "SELECT id, status, expires_at FROM lane_commands WHERE id = ANY(%s::uuid[])",
                (sorted(command_ids),),
            ).fetchall()
        }
        decisions = {
            str(eid): action
            for eid, action in db.execute(
                "SELECT event_id, ack::json -> 'decision' ->> 'action' FROM plate_events"
                " WHERE camera_id = ANY(%s) AND received_at >= %s",
                (cameras, since.replace(tzinfo=None) - timedelta(minutes=5)),
            ).fetchall()
        }

    def utc(value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    late = [
        cause
        for cause, at in first.items()
        if cause.startswith("command:")
        and cause[8:] in commands
        and datetime.fromtimestamp(at, UTC) > utc(commands[cause[8:]][1])
    ]
    meant = [cid for cid, _, ok in opener.sent if ok]
    short = [cid for cid, _, ok in opener.sent if not ok]
    unaccounted = [
        cid
        for cid in meant
        if by_cause.get(f"command:{cid}") != 1
        and commands.get(cid, ("", None))[0] not in ("expired", "failed")
    ]
    wrongly_opened = [
        cause
        for cause in by_cause
        if cause.startswith("event:")
        and decisions.get(cause[6:]) != "open"
        and cause[6:] not in offline_open
        and cause[6:] in decisions  # an event central never stored is counted as lost instead
    ]
    statuses = Counter(commands.get(cid, ("unknown", None))[0] for cid, _, _ in opener.sent)
    return {
        "manual_opens_sent": len(meant),
        "manual_opens_pulsed": sum(1 for cid in meant if by_cause.get(f"command:{cid}") == 1),
        "manual_opens_short_expiry": len(short),
        "manual_opens_refused": len(opener.refused),
        "manual_open_states": dict(statuses),
        "manual_opens_unaccounted": unaccounted,
        "short_expiry_pulsed": [cid for cid in short if f"command:{cid}" in by_cause],
        "duplicate_pulses": {c: n for c, n in by_cause.items() if n > 1},
        "late_pulses": late,
        "event_pulses": sum(n for c, n in by_cause.items() if c.startswith("event:")),
        "offline_opens": len(offline_open),
        "gates_opened_against_rules": wrongly_opened,
    }


# -- exit decisions against the ledger ------------------------------------------------------------

# Run on a central host with central's own code: every exit decision since the start, on the
# cameras given, against the ledger's rules (app/central/sessions/rules.py, the same functions
# the gate decided with) applied to the stored facts: the stay's fee by the lot's tariff and
# the plate's standing, what was paid before the decision. An "open" must have had nothing due
# and closed its session with this event and that fee; a "hold" must have had something due,
# and told the lane exactly that amount; a "deny" must have matched no session.
LEDGER_CHECK = """
from datetime import UTC, datetime
from sqlalchemy import select
from app.central.settings import Settings
from app.central.db import Database
from app.central.core.events import PlateEvent
from app.central.sessions.models import ParkingSession
from app.central.sessions.service import lot_rules, stay_fee
from app.central.sessions import rules
settings = Settings()
since = datetime.fromtimestamp(ARGS["since"], UTC)
def utc(v):
    return v if v is None or v.tzinfo else v.replace(tzinfo=UTC)
db = Database(settings)
bad, counts = [], {}
with db.session() as s:
    events = s.scalars(select(PlateEvent).where(
        PlateEvent.camera_id.in_(ARGS["cameras"]), PlateEvent.direction == "exit",
        PlateEvent.received_at >= since)).all()
    for e in events:
        d = e.ack["decision"]
        action = d["action"]
        counts[action] = counts.get(action, 0) + 1
        if e.session_id is None:
            if action != "deny":
                bad.append(f"{e.event_id}: {action} without a session")
            continue
        ses = s.get(ParkingSession, e.session_id)
        at = max(utc(e.captured_at), utc(ses.entered_at))
        fee = stay_fee(s, session=ses, exited_at=at, tz=settings.timezone).total
        paid_at = utc(ses.paid_at)
        before = paid_at is not None and paid_at <= utc(e.received_at)
        due = rules.amount_due(
            fee, paid_amount=ses.paid_amount if before else 0,
            paid_at=paid_at if before else None, at=at, lot=lot_rules(s, lot_id=ses.lot_id))
        if action == "open":
            if due > 0:
                bad.append(f"{e.event_id}: opened with {due} due")
            elif ses.status != "closed" or str(ses.exit_event_id) != str(e.event_id):
                bad.append(f"{e.event_id}: opened, session {ses.id} {ses.status} by "
                           f"{ses.exit_event_id}")
        elif action == "hold":
            if due <= 0:
                bad.append(f"{e.event_id}: held with nothing due (fee {fee})")
            elif d.get("fee") != due:
                bad.append(f"{e.event_id}: held for {d.get('fee')}, the ledger says {due}")
        else:
            bad.append(f"{e.event_id}: {action} for session {ses.id}")
db.dispose()
print(json.dumps({"checked": len(events), "actions": counts, "bad": bad[:50],
                  "bad_count": len(bad)}))
"""


def ledger_check(lab_: Lab, cameras: list[str], since_unix: float) -> dict[str, Any]:
    host = next(iter(lab_.edges.values())).central_host()
    result: dict[str, Any] = central_python(
        host, LEDGER_CHECK, {"cameras": cameras, "since": since_unix}
    )
    return result


# -- figures -------------------------------------------------------------------------------------


@dataclass
class Sample:
    t_s: float
    host: str
    pid: int
    rss_kb: int
    fds: int


def sample(host: str, unit: str, t_s: float) -> Sample | None:
    out = sh(host, RESOURCE_SCRIPT.replace("UNIT", unit), check=False, timeout=30).split()
    if len(out) != 3 or out[0] == "0":
        return None
    return Sample(t_s, host, int(out[0]), int(out[1]), int(out[2]))


def growth_per_hour(
    samples: list[Sample], value: Callable[[Sample], float], settle_s: float = 0.0
) -> float | None:
    """Least-squares slope within each process lifetime (a new pid on a host starts a new
    segment), pooled over the segments of one host; per hour. None: too few samples.
    ``settle_s``: each lifetime's first samples up to that many seconds after its first one are
    left out (a process warming up, its caches and pools filling, is not leaking)."""
    segments: list[list[Sample]] = []
    last: Sample | None = None
    for s in sorted(samples, key=lambda s: s.t_s):
        if last is None or s.pid != last.pid:
            segments.append([])
        segments[-1].append(s)
        last = s
    if settle_s > 0:
        segments = [[s for s in seg if s.t_s - seg[0].t_s >= settle_s] for seg in segments]
    sxx = sxy = 0.0
    for segment in segments:
        if len(segment) < 2:
            continue
        tm = sum(s.t_s for s in segment) / len(segment)
        vm = sum(value(s) for s in segment) / len(segment)
        sxx += sum((s.t_s - tm) ** 2 for s in segment)
        sxy += sum((s.t_s - tm) * (value(s) - vm) for s in segment)
    return sxy / sxx * 3600 if sxx > 0 else None


def worst_growth(
    samples: list[Sample], value: Callable[[Sample], float], settle_s: float = 0.0
) -> float | None:
    per_host = [
        growth_per_hour([s for s in samples if s.host == host], value, settle_s)
        for host in sorted({s.host for s in samples})
    ]
    found = [g for g in per_host if g is not None]
    return round(max(found), 2) if found else None


@dataclass
class Soak:
    args: Options
    lab: Lab
    seed: int
    work: Path
    violations: list[str] = field(default_factory=list)
    central_samples: list[Sample] = field(default_factory=list)
    edge_samples: list[Sample] = field(default_factory=list)
    alerts_before: set[str] = field(default_factory=set)
    cameras: set[str] = field(default_factory=set)  # the lab edges' and the simulator's
    not_converged: list[str] = field(default_factory=list)
    # The operators' live feed and the moment it must deliver after (the last fault's heal):
    # a feed that stays silent is part of not having converged.
    live: LiveClient | None = None
    live_since: float | None = None

    def violation(self, what: str) -> None:
        if what not in self.violations:
            log(f"VIOLATION {what}")
            self.violations.append(what)

    def preflight(self) -> None:
        status = {
            row[0]: row[-1]
            for row in (line.split() for line in lab("status").splitlines() if line.strip())
        }
        missing = [h for h in self.lab.soak_hosts() if status.get(h) != "running"]
        if missing:
            raise SystemExit(f"soak: not running: {missing}; lab/lab up and converge site.yml")
        wait_for(self.lab.vip_ok, "one VIP holder, healthy, the VIP answering", 60)
        wait_for(self.lab.db_ok, "a Patroni leader and every replica streaming", 120)
        for central in self.lab.tier.centrals:
            wait_for(lambda c=central: self.lab.tier.central_ready(c), f"{central} ready", 60)  # type: ignore[misc]
        for edge in self.lab.edges:
            wait_for(lambda e=edge: self.lab.edge_ok(e), f"{EDGE_UNIT} on {edge}", 60)  # type: ignore[misc]

    def take_samples(self, t_s: float) -> None:
        for host in sorted(self.lab.tier.centrals):
            with contextlib.suppress(Exception):
                if (s := sample(host, "parking-central", t_s)) is not None:
                    self.central_samples.append(s)
        for host in sorted(self.lab.edges):
            with contextlib.suppress(Exception):
                if (s := sample(host, EDGE_UNIT, t_s)) is not None:
                    self.edge_samples.append(s)
        try:
            for twice in self.lab.sessions_open_twice():
                self.violation(f"session open twice: {twice}")
        except Exception as exc:  # the database may be failing over right now
            log(f"sessions check skipped: {type(exc).__name__}")

    def converged(self) -> list[str]:
        """Why the lab has not converged yet (empty: it has)."""
        why: list[str] = []
        status = {
            row[0]: row[-1]
            for row in (line.split() for line in lab("status").splitlines() if line.strip())
        }
        why += [f"{h} {status.get(h)}" for h in self.lab.soak_hosts() if status.get(h) != "running"]
        if why:
            return why
        for name, edge in self.lab.edges.items():
            with contextlib.suppress(Exception):
                if edge.drained():
                    continue
            why.append(f"{name} outbox not drained")
        if not self.lab.db_ok():
            why.append("Patroni: not one leader with every replica streaming")
        why += [c for c in sorted(self.lab.tier.centrals) if not self.lab.tier.central_ready(c)]
        if not self.lab.vip_ok():
            why.append(f"VIP holders {self.lab.tier.vip_holders()}")
        why += self.duties_running()
        if (
            self.live is not None
            and self.live_since is not None
            and not any(t > self.live_since for t in self.live.events)
        ):
            why.append(self.live.story(self.live_since))
        try:
            new = self.lab.firing_alerts(self.cameras) - self.alerts_before
        except (httpx.HTTPError, ValueError) as exc:
            new = {f"Alertmanager: {type(exc).__name__}"}
        why += sorted(new)
        return why

    def duties_running(self) -> list[str]:
        """A central runs the duties (its lock session ticked lately) and no lane command is
        left open past its expiry: what a stuck lock looks like from the records."""
        holder = self.lab.tier.duties_holder()
        with self.lab.tier.database() as db:
            stuck = db.execute(
                "SELECT count(*) FROM lane_commands WHERE status IN ('pending', 'delivered')"
                " AND expires_at < now() - interval '60 seconds'"
            ).fetchone()
        why: list[str] = []
        if holder is None:
            why.append("duties: no central holds the lock")
        elif holder[1] > DUTIES_SILENT_S:
            why.append(f"duties: the lock's session ({holder[0]}) silent for {holder[1]:.0f} s")
        if stuck is not None and stuck[0]:
            why.append(f"lane commands open past their expiry: {stuck[0]}")
        return why

    def converge(self, since: float) -> float | None:
        deadline = time.monotonic() + self.args.converge_timeout
        last: list[str] = []
        while time.monotonic() < deadline:
            try:
                why = self.converged()
            except Exception as exc:
                why = [f"{type(exc).__name__}: {exc}"[:120]]
            if not why:
                return round(time.monotonic() - since, 1)
            if why != last:
                log(f"not converged: {', '.join(why)}")
                last = why
            time.sleep(3)
        self.not_converged = last
        self.violation(f"not converged {self.args.converge_timeout:.0f} s after the last fault")
        return None

    def edge_figures(self, start_ms: int) -> dict[str, int]:
        """Each edge's captured ids (its outbox: delivered, pending, dead) against central's rows
        for its camera, both since the start and up to a moment when all was delivered."""
        for name, edge in self.lab.edges.items():
            with contextlib.suppress(RuntimeError, TimeoutError):
                wait_for(edge.drained, f"{name} drained", 120)
        cutoff_ms = int(time.time() * 1000) - 5000
        figures = {"captured": 0, "stored": 0, "lost": 0, "duplicated": 0}
        for name, edge in self.lab.edges.items():
            edge_state, central_state = edge.edge_state(start_ms), edge.central_state(start_ms)
            captured = {i for i in edge_state["ids"] if uuid7_ms(i) < cutoff_ms}
            stored = {i for i in central_state["ids"] if start_ms <= uuid7_ms(i) < cutoff_ms}
            figures["captured"] += len(captured)
            figures["stored"] += len(captured & stored)
            figures["lost"] += len(captured - stored)
            figures["duplicated"] += central_state["rows"] - len(central_state["ids"])
            figures["duplicated"] += len(stored - captured)
            if captured - stored:
                log(f"{name}: lost {sorted(captured - stored)[:5]}")
        return figures


@contextlib.contextmanager
def traffic(
    soak: Soak, cameras: Cameras, login: OperatorLogin
) -> Iterator[tuple[Simulator, Probe, LiveClient]]:
    sim = Simulator(soak.lab.tier, cameras, soak.work / "sim", soak.args.rate)
    probe = Probe(soak.lab.tier, cameras.probe, soak.args.probe_rate)
    live = LiveClient(soak.lab.tier, login.token)
    sim.start()
    probe.start()
    live.start()
    try:
        yield sim, probe, live
    finally:
        for thread in (probe, live):
            thread.stop_event.set()
        for thread in (probe, live):
            thread.join(timeout=15)
        if sim.process is not None and sim.process.poll() is None:
            sim.process.kill()


def soak_run(args: Options, work: Path) -> dict[str, Any]:
    lab_ = Lab.from_inventory()
    seed = args.seed
    soak = Soak(args, lab_, seed, work)
    rng = random.Random(seed)
    window_s = args.minutes * 60.0
    kinds = sorted(KINDS) if not args.only else [k.strip() for k in args.only.split(",")]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"soak: unknown fault kinds {unknown}; known: {', '.join(sorted(KINDS))}")
    spare = spared(lab_, args.spare)
    schedule = plan(rng, lab_, window_s, (args.gap[0], args.gap[1]), kinds, spare)
    print(f"soak: seed {seed}, {args.minutes} min, {len(schedule)} faults planned:", flush=True)
    for planned in schedule:
        print(f"  {planned.line()}", flush=True)

    soak.preflight()
    # Leftovers of an interrupted soak: the slow trigger, a reset central, a full edge disk.
    for central in lab_.tier.centrals:
        stop_resetting(central)
    for lb in lab_.tier.lbs:
        unsplit(lb)
    disks = "disk-full-edge" in kinds
    clocks = "clock-step-edge" in kinds
    run_id = secrets.token_hex(3)
    cameras = make_cameras(lab_.tier, f"soak-{run_id}")
    soak.cameras = set(cameras.ids) | {edge.camera_id() for edge in lab_.edges.values()}
    soak.alerts_before = soak.lab.firing_alerts(soak.cameras)
    if soak.alerts_before:
        log(f"alerts firing before the soak (ignored after): {sorted(soak.alerts_before)}")
    # The guard, the cashier and the live feed log in again as their token ages (a run is
    # longer than a token's 30 minutes: the 2-hour run of 2026-12-06 lost them after 30).
    login = OperatorLogin(lab_.tier, f"soak-{run_id}")
    lanes = sorted(edge.camera_id() for edge in lab_.edges.values())
    opener = Opener(lab_.tier, login, lanes, args.opens_per_s, seed + 1)
    # The simulator's lot charges from the first minute: its exits are held until the cashier
    # pays, so the ledger check below sees holds, opens after payment and denials.
    sim_lot = f"bench-soak-{run_id}"
    put_tariff(lab_.tier, operator_token(lab_.tier, f"soak-{run_id}", role="manager"), sim_lot)
    cashier = Cashier(lab_.tier, login, sim_lot)
    nemesis: Nemesis | None = None
    db_bytes_before = database_bytes(lab_)
    try:
        Nemesis(lab_, [], 0, 0).fast_db()
        if clocks:
            library = build_clockshift(work)
            for edge in lab_.edges:
                log(f"{edge}: the agent's wall clock steppable (lab/clockshift.c)")
                attach_clock(edge, library)
        if disks:
            for edge in lab_.edges:
                log(f"{edge}: the agent's state on a disk of its own")
                attach_disk(edge)
        start_ms = int(time.time() * 1000)
        with traffic(soak, cameras, login) as (sim, probe, live):
            wait_for(lambda: bool(live.connects) and bool(live.events), "live feed delivers", 60)
            started = time.monotonic()
            started_unix = time.time()
            if args.opens_per_s > 0:
                opener.start()
            cashier.start()
            nemesis = Nemesis(lab_, schedule, started, window_s)
            nemesis.start()
            next_sample = 0.0
            while time.monotonic() - started < window_s:
                if time.monotonic() - started >= next_sample:
                    soak.take_samples(time.monotonic() - started)
                    next_sample += args.sample_s
                time.sleep(1)
            log("traffic window over: waiting for the faults in progress to heal")
            opener.stop_event.set()
            nemesis.join()
            healed = [
                started + d.healed_s
                for d in nemesis.done
                if d.healed_s is not None and d.skipped is None
            ]
            last_heal = max(healed, default=started + window_s)
            for d in nemesis.done:
                if d.error:
                    soak.violation(f"{d.planned.kind} {d.planned.target}: {d.error}")
            log("converging")
            soak.live, soak.live_since = live, last_heal
            converged_s = soak.converge(last_heal)
            soak.take_samples(time.monotonic() - started)
            live_back = any(t > last_heal for t in live.events)
            if not live_back:
                soak.violation(
                    "the live feed delivered nothing after the last fault: " + live.story(last_heal)
                )
            figures = sim.stop()
        elapsed_s = time.monotonic() - started
        made, left = sim.made()
        stored = count_stored(lab_.tier, cameras)
        sent = made | probe.sent
        sim_lost = len((made | probe.acked) - stored.keys())
        if left:
            soak.violation(f"the simulator's outbox kept {left} events after its drain run")
        sim_dup = sum(n - 1 for n in stored.values()) + len(stored.keys() - sent)
        sim_captured = len(made | probe.acked)
        edges = soak.edge_figures(start_ms)
        refused = lab_.prometheus(
            f"sum(increase(parking_edge_events_refused_total[{int(elapsed_s) + 60}s]))"
        )
        try:
            for twice in lab_.sessions_open_twice():
                soak.violation(f"session open twice: {twice}")
        except Exception as exc:
            soak.violation(f"sessions check failed at the end: {exc}")
        cashier.stop_event.set()
        gates = gate_figures(lab_, opener, started_unix, lanes)
        ledger = ledger_check(lab_, [*lanes, cameras.exit[0]], started_unix)
        for bad in ledger["bad"]:
            soak.violation(f"exit decision against the ledger: {bad}")
        for name in (
            "manual_opens_unaccounted", "short_expiry_pulsed", "duplicate_pulses", "late_pulses",
            "gates_opened_against_rules",
        ):  # fmt: skip
            if gates[name]:
                soak.violation(f"{name}: {list(gates[name])[:5]}")
        logs = log_volume(lab_, started_unix, elapsed_s)
        db_bytes_after = database_bytes(lab_)
    finally:
        opener.stop_event.set()
        cashier.stop_event.set()
        if nemesis is not None:
            nemesis.stop.set()
            nemesis.heal_all()
        with contextlib.suppress(Exception):
            Nemesis(lab_, [], 0, 0).fast_db()
        for central in lab_.tier.centrals:
            with contextlib.suppress(Exception):
                stop_resetting(central)
        for lb in lab_.tier.lbs:
            with contextlib.suppress(Exception):
                unsplit(lb)
        if clocks:
            for edge in lab_.edges:
                try:
                    detach_clock(edge)
                except Exception as exc:
                    log(f"{edge}: could not remove the clock step: {exc}")
        if disks:
            for edge in lab_.edges:
                try:
                    detach_disk(edge)
                except Exception as exc:
                    log(f"{edge}: could not move the agent's state back: {exc}")
    done = nemesis.done if nemesis is not None else []
    ran = [d for d in done if d.skipped is None]
    stored_total = edges["stored"] + sim_captured - sim_lost
    for d in ran:
        if d.recovered_s is None and d.error is None:
            soak.violation(f"{d.planned.kind} {d.planned.target}: never recovered")
    return {
        "minutes": args.minutes,
        "seed": seed,
        "faults_injected": len(ran),
        "faults_skipped": len(done) - len(ran),
        "faults_by_kind": {k: sum(d.planned.kind == k for d in ran) for k in sorted(KINDS)},
        "events_captured": edges["captured"] + sim_captured,
        "events_stored": edges["stored"] + sim_captured - sim_lost,
        "events_lost": edges["lost"] + sim_lost,
        "events_duplicated": edges["duplicated"] + sim_dup,
        "edge_events_captured": edges["captured"],
        "edge_events_refused": None if refused is None else round(refused),
        "sim_events_made": len(made),
        "probe_acked": len(probe.acked),
        "probe_failed": len(probe.failures),
        "sim_failed_sends": int(
            sum(v for k, v in figures.items() if k.startswith("parking_edge_send_failures_total"))
        ),
        "live_drops": len(live.drops),
        "gates": gates,
        "exit_decisions": {
            "checked": ledger["checked"],
            "actions": ledger["actions"],
            "against_ledger": ledger["bad_count"],
            "payments": len(cashier.paid),
            "cashier_errors": len(cashier.errors),
        },
        "db_bytes_per_event": (
            round((db_bytes_after - db_bytes_before) / stored_total)
            if stored_total and db_bytes_before is not None and db_bytes_after is not None
            else None
        ),
        "log_mb_per_h": logs,
        "log_mb_per_h_max": max(logs.values(), default=None),
        "invariant_violations": len(soak.violations),
        "violations": soak.violations[:20],
        "converged_s": converged_s,
        "not_converged": soak.not_converged,
        "alerts_before": sorted(soak.alerts_before),
        "central_rss_mb_per_h": mb(worst_growth(soak.central_samples, lambda s: s.rss_kb)),
        "edge_rss_mb_per_h": mb(worst_growth(soak.edge_samples, lambda s: s.rss_kb)),
        # The same once each process has run SETTLE_S (warm-up left out; None: no lifetime
        # that long with two samples after it).
        "central_rss_mb_per_h_settled": mb(
            worst_growth(soak.central_samples, lambda s: s.rss_kb, SETTLE_S)
        ),
        "edge_rss_mb_per_h_settled": mb(
            worst_growth(soak.edge_samples, lambda s: s.rss_kb, SETTLE_S)
        ),
        # The last hour of a process that lived >= 90 minutes (a spared host's), the worst
        # host of the tier; None: none lived that long. The memory goal is judged on these.
        "central_rss_mb_per_h_last_hour": mb(worst_last_hour(soak.central_samples)),
        "edge_rss_mb_per_h_last_hour": mb(worst_last_hour(soak.edge_samples)),
        "central_fds_growth": worst_growth(soak.central_samples, lambda s: s.fds),
        "edge_fds_growth": worst_growth(soak.edge_samples, lambda s: s.fds),
        "samples": len(soak.central_samples) + len(soak.edge_samples),
        "spared": list(spare),
        "per_host": per_host_growth(soak.central_samples + soak.edge_samples),
        "elapsed_s": round(elapsed_s, 1),
        "faults": [
            {k: v for k, v in asdict(d).items() if v is not None} | {"planned": asdict(d.planned)}
            for d in done
        ],
    }


def last_hour_growth(samples: list[Sample]) -> float | None:
    """Growth per hour of RSS over the last hour of the last process among ``samples`` (one
    host's), when that process lived at least 90 minutes; None otherwise."""
    if not samples:
        return None
    pid = samples[-1].pid
    life = [s for s in samples if s.pid == pid]
    if life[-1].t_s - life[0].t_s < 5400:
        return None
    return growth_per_hour([s for s in life if s.t_s >= life[-1].t_s - 3600], lambda s: s.rss_kb)


def by_host(samples: list[Sample]) -> dict[str, list[Sample]]:
    """Each host's samples in time order, hosts sorted by name."""
    return {
        host: sorted((s for s in samples if s.host == host), key=lambda s: s.t_s)
        for host in sorted({s.host for s in samples})
    }


def worst_last_hour(samples: list[Sample]) -> float | None:
    """The largest ``last_hour_growth`` among the hosts of ``samples``; None: no host's last
    process lived 90 minutes."""
    found = [g for mine in by_host(samples).values() if (g := last_hour_growth(mine)) is not None]
    return max(found) if found else None


def per_host_growth(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Each sampled host's process: how many times it started, its RSS first and last (MB), and
    its growth per hour once settled (a spared host's process: one lifetime of the whole run)."""
    return {
        host: {
            "pids": len({s.pid for s in mine}),
            "rss_mb_first": round(mine[0].rss_kb / 1024, 1),
            "rss_mb_last": round(mine[-1].rss_kb / 1024, 1),
            "rss_mb_per_h_settled": mb(growth_per_hour(mine, lambda s: s.rss_kb, SETTLE_S)),
            # the last hour of the last process alone (None: it lived less than 90 minutes),
            # for a spared process: its growth once a long warm-up is over
            "rss_mb_per_h_last_hour": mb(last_hour_growth(mine)),
            "fds_growth_settled": growth_per_hour(mine, lambda s: s.fds, SETTLE_S),
        }
        for host, mine in by_host(samples).items()
    }


def database_bytes(lab_: Lab) -> int | None:
    """The parking database's size on its leader (pg_database_size)."""
    with contextlib.suppress(Exception), lab_.tier.database() as db:
        row = db.execute("SELECT pg_database_size('parking')").fetchone()
        return int(row[0]) if row else None
    return None


def log_volume(lab_: Lab, since_unix: float, seconds: float) -> dict[str, float]:
    """MB per hour each soaked host's journal took since ``since_unix`` (every unit, as text)."""
    out: dict[str, float] = {}
    for host in lab_.soak_hosts():
        with contextlib.suppress(Exception):
            n = sh(
                host,
                f"journalctl --since @{int(since_unix)} -o short-iso --no-pager | wc -c",
                timeout=120,
            )
            out[host] = round(int(n.strip()) / 1e6 / (seconds / 3600.0), 2)
    return out


def mb(kb_per_h: float | None) -> float | None:
    return None if kb_per_h is None else round(kb_per_h / 1024, 2)

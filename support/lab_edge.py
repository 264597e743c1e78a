"""An edge host in the lab (``EdgeHost``): commands on it and on central through ``lab/lab``,
its outbox and decision journal, and ``network_cut`` (the offline-gate scenario).

Shared by ``bench/edge_offline.py`` (which prints the figures) and by
``tests/lab/test_edge.py`` and ``tests/lab/test_lane_commands.py`` (which assert them); the
bench's docstring describes the scenario.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from support import lab_cli

EDGE_BIN = "/opt/parking-edge/current/bin"
EDGE_CONFIG = "/etc/parking-edge/edge.toml"
EDGE_OUTBOX = "/var/lib/parking-edge/outbox/outbox.db"
EDGE_IMAGES = "/var/lib/parking-edge-images"
CENTRAL_PY = "/opt/parking-central/current/bin/python"
CENTRAL_ENV = "/etc/parking-central/central.env"


def lab(*args: str, check: bool = True, timeout: float = 120) -> str:
    """``lab/lab`` with a shorter default wait (an edge host's steps are quick)."""
    return lab_cli.lab(*args, check=check, timeout=timeout)


def sh(host: str, command: str, *, check: bool = True, timeout: float = 60) -> str:
    return lab("exec", host, "sh", "-c", command, check=check, timeout=timeout)


def _python(host: str, prefix: str, python: str, user: str, code: str, args: Any) -> Any:
    """``code`` sees ``ARGS`` (``args`` through JSON); its last printed line is JSON."""
    program = f"import json\nARGS = json.loads({json.dumps(args)!r})\n{code}"
    encoded = base64.b64encode(program.encode()).decode()
    out = sh(host, f"{prefix}echo {encoded} | base64 -d | runuser -u {user} -- {python} -")
    return json.loads(out.strip().splitlines()[-1])


def edge_python(host: str, code: str, args: Any = None) -> Any:
    """Run ``code`` with the agent's Python as the agent's user."""
    return _python(host, "", f"{EDGE_BIN}/python", "parking-edge", code, args)


def central_python(host: str, code: str, args: Any = None) -> Any:
    """Run ``code`` with central's Python and settings (database URL) on a central host."""
    prefix = f"set -a && . {CENTRAL_ENV} && set +a && "
    # Every table on the metadata first, so foreign keys resolve.
    program = "import app.central.models\n" + code
    deadline = time.monotonic() + 90  # a database failover in between takes ~20 s
    while True:
        try:
            return _python(host, prefix, CENTRAL_PY, "parking", program, args)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


# -- programs run on the hosts (they see ARGS) ---------------------------------------------------

LOT_OF_CAMERA = """
from sqlalchemy import select
from app.central.settings import Settings
from app.central.db import Database
from app.central.cameras.models import Camera
db = Database(Settings())
with db.session() as s:
    print(json.dumps(s.scalar(select(Camera.lot_id).where(Camera.id == ARGS))))
db.dispose()
"""

EDGE_STATE = """
import sqlite3
db = sqlite3.connect("/var/lib/parking-edge/outbox/outbox.db", timeout=10)
ids = [r[0] for r in db.execute(
    "SELECT event_id FROM delivered UNION ALL SELECT event_id FROM events"
    " UNION ALL SELECT event_id FROM dead_letters")]
actions = db.execute(
    "SELECT event_id, action, reason, offline FROM gate_actions WHERE at >= ?", (ARGS / 1000,)
).fetchall()
pending = [r[0] for r in db.execute("SELECT event_id FROM events")]
check = db.execute("PRAGMA quick_check").fetchone()[0]
journal = sqlite3.connect("/var/lib/parking-edge/gate/offline.db", timeout=10)
decisions = [json.loads(r[0]) for r in journal.execute(
    "SELECT payload FROM offline_decisions ORDER BY seq")]
print(json.dumps({"ids": ids, "actions": actions, "pending": pending, "check": check,
                  "decisions": decisions}))
"""

CENTRAL_STATE = """
from datetime import UTC, datetime
from sqlalchemy import func, or_, select
from app.central.settings import Settings
from app.central.db import Database
from app.central.core.events import PlateEvent
from app.central.edgesync.models import OfflineGateDecision
from app.central.cameras.service import camera_views
from app.central.clock import utcnow
camera = ARGS["camera"]
since = datetime.fromtimestamp(ARGS["since_ms"] / 1000, UTC)
db = Database(Settings())
with db.session() as s:
    # Captured or received since: an edge whose clock was stepped back stamps captured_at
    # before ``since`` on events it made after it (the soak's clock-step fault).
    rows = s.execute(select(PlateEvent.event_id, func.count()).where(
        PlateEvent.camera_id == camera,
        or_(PlateEvent.captured_at >= since, PlateEvent.received_at >= since),
    ).group_by(PlateEvent.event_id)).all()
    # ... and, as the edge's lists, by the id's own capture time (a UUIDv7's 48-bit ms).
    rows = [(i, n) for i, n in rows if i.int >> 80 >= ARGS["since_ms"]]
    offline = s.execute(select(OfflineGateDecision.event_id, OfflineGateDecision.basis,
        OfflineGateDecision.action).where(OfflineGateDecision.camera_id == camera,
        OfflineGateDecision.decided_at >= since)).all()
    view = next(v for v in camera_views(s, now=utcnow(), offline_after_s=60) if v["id"] == camera)
db.dispose()
print(json.dumps({
    "ids": sorted(str(i) for i, _ in rows),
    "rows": sum(n for _, n in rows),
    "offline": [[str(e), b, a] for e, b, a in offline],
    "captured_total": view["captured_total"],
    "received_total": view["received_total"],
    "reconciliation_gap": view["reconciliation_gap"],
}))
"""

PUT_ON_LISTS = """
from datetime import UTC, datetime, timedelta
from app.central.settings import Settings
from app.central.db import Database
from app.central.lists.service import add_list_entry, add_subscription
now = datetime.now(UTC)
db = Database(Settings())
with db.session() as s:
    d = add_list_entry(s, plate=ARGS["deny"], kind="deny", lot_id=ARGS["lot"],
                       reason="edge lab test", expires_at=None)
    a = add_list_entry(s, plate=ARGS["allow"], kind="allow", lot_id=ARGS["lot"],
                       reason="edge lab test", expires_at=None)
    p = add_subscription(s, plate=ARGS["subscriber"], lot_id=ARGS["lot"], holder="edge lab test",
                         valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=1))
    s.commit()
    made = {"entries": [d.id, a.id], "subscriptions": [p.id]}
db.dispose()
print(json.dumps(made))
"""

TAKE_OFF_LISTS = """
from sqlalchemy import delete
from app.central.settings import Settings
from app.central.db import Database
from app.central.lists.models import ListEntry, Subscription
db = Database(Settings())
with db.session() as s:
    s.execute(delete(ListEntry).where(ListEntry.id.in_(ARGS["entries"])))
    s.execute(delete(Subscription).where(Subscription.id.in_(ARGS["subscriptions"])))
    s.commit()
db.dispose()
print(json.dumps("ok"))
"""


def uuid7_ms(event_id: str) -> int:
    return UUID(event_id).int >> 80


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> float:
    """Seconds it took; raises saying what never became true."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(1)
    raise TimeoutError(f"{what}: not true after {timeout:.0f}s")


@dataclass
class EdgeHost:
    """One converged edge host of the lab and the central host that answers for it."""

    name: str
    central: str | None = None  # None: the first central host that is running

    def central_host(self) -> str:
        if self.central:
            return self.central
        names = [line.split()[0] for line in lab("hosts", "central").splitlines() if line.strip()]
        deadline = time.monotonic() + 60  # one may be powering on again
        while True:
            rows = [line.split() for line in lab("status").splitlines() if line.strip()]
            states = {row[0]: row[-1] for row in rows}
            running = [n for n in sorted(names) if states.get(n) == "running"]
            if running:
                return running[0]
            if time.monotonic() > deadline:
                raise RuntimeError("no central host is running")
            time.sleep(3)

    def cli(self, *args: str) -> dict[str, Any]:
        out = sh(
            self.name,
            f"runuser -u parking-edge -- {EDGE_BIN}/parking-edge {' '.join(args)} "
            f"--json --config {EDGE_CONFIG}",
        )
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    def outbox(self) -> dict[str, Any]:
        return self.cli("outbox", "stats")

    def offline(self) -> dict[str, Any]:
        return self.cli("offline")

    def camera_id(self) -> str:
        out = sh(self.name, f"grep -m1 '^id = ' {EDGE_CONFIG}")
        return out.split("=", 1)[1].strip().strip('"')

    def lot_id(self) -> str:
        lot: str = central_python(self.central_host(), LOT_OF_CAMERA, self.camera_id())
        return lot

    def replayed_plates(self) -> list[str]:
        """The ground truth of the pictures the agent replays, in replay order."""
        out = sh(self.name, f"cat $(ls {EDGE_IMAGES}/*.txt | sort)")
        return [line.split("\t")[5].strip() for line in out.splitlines() if line.count("\t") >= 5]

    def edge_state(self, since_ms: int) -> dict[str, Any]:
        """Event ids captured since ``since_ms`` (delivered, queued, dead) and gate actions."""
        state: dict[str, Any] = edge_python(self.name, EDGE_STATE, since_ms)
        # Every list by the same capture-time window (an event made just before ``since_ms`` may
        # still be queued, and central's side of the comparison filters by capture time too).
        state["ids"] = sorted(i for i in state["ids"] if uuid7_ms(i) >= since_ms)
        state["pending"] = sorted(i for i in state["pending"] if uuid7_ms(i) >= since_ms)
        state["decisions"] = [d for d in state["decisions"] if uuid7_ms(d["event_id"]) >= since_ms]
        return state

    def central_state(self, since_ms: int) -> dict[str, Any]:
        """What central holds for this camera since ``since_ms``, and its reconciliation."""
        state: dict[str, Any] = central_python(
            self.central_host(), CENTRAL_STATE, {"camera": self.camera_id(), "since_ms": since_ms}
        )
        return state

    def put_on_lists(self, lot: str, deny: str, allow: str, subscriber: str) -> dict[str, Any]:
        made: dict[str, Any] = central_python(
            self.central_host(),
            PUT_ON_LISTS,
            {"lot": lot, "deny": deny, "allow": allow, "subscriber": subscriber},
        )
        return made

    def take_off_lists(self, made: dict[str, Any]) -> None:
        central_python(self.central_host(), TAKE_OFF_LISTS, made)

    def drained(self) -> bool:
        box, offline = self.outbox(), self.offline()
        return bool(box["depth"] == 0 and offline["unreported"] == 0)

    def unit(self) -> dict[str, str]:
        out = sh(
            self.name,
            "systemctl show parking-edge -p ActiveState -p SubState -p MainPID -p NRestarts",
        )
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def network_cut(edge: EdgeHost, cut_s: float, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole case; returns the figures (and raises if the edge never drains)."""
    plates = edge.replayed_plates()
    lot = edge.lot_id()
    deny, allow, subscriber = plates[0], plates[1], plates[2]
    made = edge.put_on_lists(lot, deny, allow, subscriber)
    try:
        wait_for(
            lambda: (lambda o: o["deny"] >= 1 and o["allow"] >= 1 and o["passes"] >= 1)(
                edge.offline()
            ),
            "the edge synced the lists",
            timeout=60,
        )
        wait_for(edge.drained, "the edge is drained before the cut", timeout=60)
        started_ms = int(time.time() * 1000)
        before = edge.offline()["decisions"]
        log(f"cutting {edge.name} for {cut_s:.0f}s (deny {deny}, allow {allow}, pass {subscriber})")
        lab("cut", edge.name)
        try:
            time.sleep(cut_s)
            during = edge.edge_state(started_ms)
        finally:
            lab("restore", edge.name)
        restored = time.monotonic()
        log(f"restored; {len(during['ids'])} events captured while cut, draining")
        drain_s = wait_for(edge.drained, "the outbox and the journal drain", timeout=180)
        ended_ms = int(time.time() * 1000) - 2000  # events older than this are all delivered

        def window(ids: list[str]) -> list[str]:
            return [i for i in ids if uuid7_ms(i) < ended_ms]

        wait_for(
            lambda: (
                window(edge.central_state(started_ms)["ids"])
                == window(edge.edge_state(started_ms)["ids"])
            ),
            "central holds exactly the edge's events",
            timeout=60,
        )
        wait_for(
            lambda: edge.central_state(started_ms)["reconciliation_gap"] == 0,
            "central's reconciliation shows no gap",
            timeout=60,
        )
        edge_now = edge.edge_state(started_ms)
        central_now = edge.central_state(started_ms)
    finally:
        try:
            edge.take_off_lists(made)
        except RuntimeError as exc:  # never hide the case's own failure behind the cleanup's
            log(f"could not take the test plates off central's lists: {exc}")
    captured = window(edge_now["ids"])
    delivered = window(central_now["ids"])
    offline_cut = [d for d in edge_now["decisions"] if uuid7_ms(d["event_id"]) < ended_ms]
    central_offline = {e for e, _, _ in central_now["offline"]}
    by_basis: dict[str, int] = {}
    for decision in offline_cut:
        by_basis[decision["basis"]] = by_basis.get(decision["basis"], 0) + 1
    actions_cut = {tuple(a[:2]) for a in during["actions"] if a[3]}
    deny_ids = {
        d["event_id"] for d in offline_cut if d["basis"] == "deny_list" and d["action"] == "deny"
    }
    return {
        "host": edge.name,
        "camera_id": edge.camera_id(),
        "cut_s": cut_s,
        "captured": len(captured),
        "captured_while_cut": len(during["ids"]),
        "delivered": len(set(delivered) & set(captured)),
        "missing": len(set(captured) - set(delivered)),
        "unexpected": len(set(delivered) - set(captured)),
        "duplicates": central_now["rows"] - len(central_now["ids"]),
        "offline_decisions": len(offline_cut),
        "offline_decisions_at_central": len({d["event_id"] for d in offline_cut} & central_offline),
        "offline_by_basis": dict(sorted(by_basis.items())),
        "deny_list_kept_closed": len(deny_ids),
        "gate_actions_while_cut": len(actions_cut),
        "decisions_while_cut": len(during["decisions"]),
        "decisions_before": before,
        "drain_s": round(drain_s, 1),
        "restore_to_checked_s": round(time.monotonic() - restored, 1),
        "central_captured_total": central_now["captured_total"],
        "central_received_total": central_now["received_total"],
        "reconciliation_gap": central_now["reconciliation_gap"],
    }

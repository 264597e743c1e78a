"""The edge on the Raspberry Pi's architecture: an arm64 (Debian 12 arm64) lab host, booted and
run under QEMU user-mode emulation, converged from this x86-64 machine with playbooks/site.yml
and an aarch64 wheelhouse (docs/lab.md, "arm64 edge hosts").

Opt-in: `make test-lab-arm64` (lab/test-arm64.sh) boots the central tier and edgearm1, converges
them and runs this module with PARKING_LAB_ARM64=1; `make test-lab` never collects it. On a
machine without binfmt_misc or QEMU every test is reported skipped with the reason.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from app.contract import normalize_plate
from support.edge_arch import compare
from support.lab_edge import EDGE_BIN, EdgeHost, central_python, sh
from tests.lab.harness import REPO, Lab, running_lab, wait_until

HOST = "edgearm1"
# What the lane needs besides itself: central behind the VIP, its database.
NEEDS = "etcd:db:central:lb:edge_arm64"
EM_AARCH64 = 183  # ELF e_machine
READS = 2

CENTRAL_PLATES = """
from sqlalchemy import select
from app.central.settings import Settings
from app.central.db import Database
from app.central.core.events import PlateEvent
db = Database(Settings())
with db.session() as s:
    query = select(PlateEvent.plate_normalized).where(PlateEvent.camera_id == ARGS)
    plates = s.scalars(query).all()
db.dispose()
print(json.dumps(sorted(plates)))
"""


@pytest.fixture(scope="module")
def arm_lab() -> Lab:
    check = subprocess.run(
        [str(REPO / "lab" / "lab"), "arch-check", "arm64"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        pytest.skip(f"arm64 lab hosts cannot run here: {(check.stdout + check.stderr).strip()}")
    return running_lab(NEEDS, "the arm64 edge host and the central tier")


@pytest.fixture(scope="module")
def edge(arm_lab: Lab) -> EdgeHost:
    host = EdgeHost(HOST)
    wait_until(lambda: host.unit().get("ActiveState") == "active", what="agent up", timeout=120)
    return host


@pytest.fixture(scope="module")
def reads(edge: EdgeHost) -> dict[str, object]:
    """The host's and this machine's reads of the first pictures the lane replays (a TFLite
    read costs ~a minute of CPU under emulation: two pictures)."""
    return compare(HOST, READS)


def elf_machine(path: str) -> int:
    return int(sh(HOST, f"od -An -tu2 -j18 -N2 $(readlink -f {path})").strip())


def test_the_host_and_the_release_are_aarch64(edge: EdgeHost) -> None:
    assert sh(HOST, "uname -m").strip() == "aarch64"
    assert elf_machine("/sbin/init") == EM_AARCH64
    assert elf_machine(f"{EDGE_BIN}/python") == EM_AARCH64
    # The compiled wheels came from the aarch64 wheelhouse built on the x86-64 controller.
    site = "/opt/parking-edge/current/lib/python3.11/site-packages"
    for dist in ("numpy", "opencv_python_headless", "ai_edge_litert"):
        tags = sh(HOST, f"grep -h '^Tag:' {site}/{dist}-*.dist-info/WHEEL")
        assert "aarch64" in tags and "x86_64" not in tags, (dist, tags)
    native = sh(HOST, f"find {site}/numpy -name '_multiarray_umath*.so' | head -1").strip()
    assert native.endswith("aarch64-linux-gnu.so"), native
    assert elf_machine(native) == EM_AARCH64


def test_the_agent_runs_registered_under_its_hardened_unit_and_watchdog(edge: EdgeHost) -> None:
    props = edge.unit()
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    unit = sh(
        HOST,
        "systemctl show parking-edge -p Type -p WatchdogUSec -p Restart -p NoNewPrivileges"
        " -p ProtectSystem -p PrivateDevices -p SystemCallFilter -p User",
    )
    shown = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line)
    assert shown["Type"] == "notify" and shown["Restart"] == "on-failure", shown
    assert shown["WatchdogUSec"] not in ("0", "infinity"), shown
    assert shown["NoNewPrivileges"] == "yes" and shown["ProtectSystem"] == "strict", shown
    assert shown["PrivateDevices"] == "yes" and shown["User"] == "parking-edge", shown
    # The production unit, not a lab variant: the same system call filter as on x86-64.
    assert shown["SystemCallFilter"].strip(), shown
    score = sh(HOST, "systemd-analyze security parking-edge | tail -1", timeout=180)
    assert "OK" in score or "SAFE" in score, score
    code = sh(
        HOST,
        "curl -s -o /dev/null -w '%{http_code}' --cacert /etc/parking-edge/ca.crt "
        '-H "X-API-Key: $(cat /etc/parking-edge/api-key)" https://10.77.0.30/api/v1/edge/lists',
    )
    assert code == "200", f"central answered {code} to the arm64 agent's key through the VIP"


def test_heartbeats_and_events_reach_central_through_the_vip(edge: EdgeHost) -> None:
    camera = edge.camera_id()
    started = sh(
        HOST, "systemctl show parking-edge -p ExecMainStartTimestamp --value --timestamp=unix"
    ).strip()
    started_s = float(started.lstrip("@"))
    central = edge.central_host()

    def heartbeat_after_start() -> bool:
        out = sh(
            central,
            "set -a && . /etc/parking-central/central.env && set +a && runuser -u parking -- "
            f"/opt/parking-central/current/bin/parking-central camera-status {camera}",
            check=False,
        )
        try:
            health = json.loads(out.strip().splitlines()[-1]).get("health") or {}
        except (ValueError, IndexError):
            return False
        sent = health.get("sent_at") or ""
        when = sh(HOST, f"date -u -d '{sent}' +%s", check=False).strip() if sent else ""
        return when.isdigit() and int(when) >= int(started_s)

    wait_until(heartbeat_after_start, what="a heartbeat sent after the start", timeout=120)
    before = edge.outbox()["delivered_total"]
    wait_until(
        lambda: edge.outbox()["delivered_total"] > before,
        what="the arm64 agent delivers events",
        timeout=240,
        interval=5,
    )
    # The lane replays the ground truth (the agent's reader under emulation, group_vars):
    # what central holds from it is what the lane saw.
    stored = set(central_python(central, CENTRAL_PLATES, camera))
    replayed = {normalize_plate(plate) for plate in edge.replayed_plates()}
    assert stored and stored <= replayed, (sorted(stored - replayed), sorted(replayed))


def test_reads_on_arm64_equal_the_x86_64_reads(edge: EdgeHost, reads: dict[str, object]) -> None:
    print(json.dumps(reads))
    assert reads["arch"] == "aarch64" and reads["reference_arch"] == "x86_64", reads
    assert reads["images"] and reads["same_reads"] == reads["images"], reads["differences"]
    assert int(str(reads["plates_found"])) >= 1, reads

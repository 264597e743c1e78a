"""Every alert proven to fire in the lab: bench/alerts_drill.py induces each fault (full disk,
memory, expiring certificates, central stopped, database unreachable with 5xx, slow API,
replication lag, PostgreSQL stopped, an edge cut off from central (camera silent, outbox
growing), host cut off, backup too old, etcd quorum lost, Prometheus stopped) and reports, per
alert, when Alertmanager delivered it to the lab's recorder and when it delivered it resolved.
Runs once for the module (about 6 minutes, lanes in parallel); the drill removes each fault,
and the last test checks the lab is healthy again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

from support import lab_pki
from tests.lab.harness import REPO, Lab, wait_until

DRILL = REPO / "bench" / "alerts_drill.py"
DRILL_TIMEOUT_S = 1200
# Every alert the drill must show firing and resolving after a full site.yml converge.
EXPECTED = [
    "ParkingDiskFreeLow",
    "ParkingDiskFreeCritical",
    "ParkingMemoryUsedHigh",
    "ParkingMemoryUsedCritical",
    "ParkingCertificateExpiring",
    "ParkingCertificateExpiringSoon",
    "ParkingCentralDown",
    "ParkingCentralDatabaseUnreachable",
    "ParkingHighErrorRate",
    "ParkingSlowResponses",
    "ParkingReplicationLag",
    "ParkingPostgresDown",
    "ParkingScrapeTargetDown",
    "ParkingCameraOffline",
    "ParkingEdgeOutboxGrowing",
    "ParkingEdgeOutboxStale",
    "ParkingHostDown",
    "ParkingBackupTooOld",
    "ParkingPatroniNoLeader",
    "Watchdog (deadman)",
]


# The drill runs in the module's first test's setup: past pytest's default per-test timeout.
pytestmark = pytest.mark.timeout(DRILL_TIMEOUT_S + 120)


@pytest.fixture(scope="module")
def drill(lab: Lab) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, str(DRILL)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=DRILL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM: the drill removes the faults it injected before it exits.
        process.terminate()
        stdout, stderr = process.communicate(timeout=300)
        pytest.fail(f"the drill took over {DRILL_TIMEOUT_S}s: {stderr[-3000:]}")
    # Kept for the record (the table and the JSON line), e.g. for a closing note.
    (REPO / ".lab" / "alerts-drill.txt").write_text(stdout + "\n--- stderr ---\n" + stderr)
    lines = stdout.strip().splitlines()
    assert lines, f"drill printed nothing: {stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(lines[-1])
    print("\n".join(lines[:-1]))  # the table, shown with -s or on failure
    return summary


@pytest.mark.parametrize("alert", EXPECTED)
def test_alert_is_delivered_and_resolved(drill: dict[str, Any], alert: str) -> None:
    assert alert not in drill["skipped"], f"{alert} skipped: {drill['skipped'][alert]}"
    assert alert not in drill["failures"], f"{alert}: {drill['failures'][alert]}"
    figures = drill["alerts"][alert]
    assert figures["fire_s"] is not None, figures
    assert figures["resolve_s"] is not None, figures


def test_drill_totals(drill: dict[str, Any]) -> None:
    assert drill["expected"] == len(EXPECTED)
    assert drill["fired"] == drill["resolved"] == drill["expected"]


def test_lab_is_healthy_after_the_drill(drill: dict[str, Any], lab: Lab) -> None:
    monitor = next(iter(lab.hosts("monitoring").values()))

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"http://{monitor}:9090{path}", timeout=10) as answer:
            return json.load(answer)

    def all_up() -> bool:
        targets = get("/api/v1/targets?state=active")["data"]["activeTargets"]
        return all(t["health"] == "up" for t in targets)

    wait_until(all_up, "every scrape target up again", timeout=90, interval=2)

    def still_firing() -> list[tuple[str, dict[str, str]]]:
        """The drill's own alerts (their labels: the instance, mountpoint, camera it broke)
        still firing; other things (another suite's test camera that never beats) may fire on
        their own."""
        firing = [
            a["labels"] for a in get("/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"
        ]
        return [
            (name, figures["labels"])
            for name, figures in drill["alerts"].items()
            if name in EXPECTED[:-1]
            and any(
                labels["alertname"] == name
                and all(labels.get(k) == v for k, v in figures["labels"].items())
                for labels in firing
            )
        ]

    # Each was delivered resolved during the drill; a replica that rewinds after the last
    # fault's election may lag for a moment more.
    deadline = time.monotonic() + 120
    still = still_firing()
    while still and time.monotonic() < deadline:
        time.sleep(3)
        still = still_firing()
    assert not still, f"still firing 2 minutes after the drill: {still}"
    mounts = lab.sh(monitor_host(lab), "ls /srv; findmnt -rn -o TARGET").stdout
    assert "drill" not in mounts, mounts


def monitor_host(lab: Lab) -> str:
    return next(iter(lab.hosts("monitoring")))


def test_tiers_are_whole_again_after_the_drill(drill: dict[str, Any], lab: Lab) -> None:
    assert set(lab.status().values()) == {"running"}, lab.status()

    def cluster() -> list[dict[str, Any]]:
        address = next(iter(lab.hosts("db").values()))
        url = f"https://{address}:8008/cluster"
        with urllib.request.urlopen(url, timeout=5, context=lab_pki.admin().context()) as answer:
            members: list[dict[str, Any]] = json.load(answer)["members"]
            return members

    def replicas_streaming() -> bool:
        members = cluster()
        return len(members) == len(lab.hosts("db")) and all(
            m["role"] == "leader" or m.get("state") == "streaming" for m in members
        )

    wait_until(replicas_streaming, "every Patroni replica streaming again", timeout=90)
    for host in lab.hosts("db"):
        assert "parking_drill" not in lab.sh(host, "nft list tables").stdout, host
    for host in lab.hosts("central"):
        assert lab.sh(host, "systemctl is-active parking-central", check=False).stdout.strip() == (
            "active"
        ), host
        assert "parking_drill" not in lab.sh(host, "nft list tables").stdout, host
    for host in lab.hosts("edge"):
        assert lab.sh(host, "systemctl is-active parking-edge", check=False).stdout.strip() == (
            "active"
        ), host

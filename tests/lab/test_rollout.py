"""Careful rollout and rollback in the lab (docs/runbooks/rollback.md).

playbooks/edge.yml rolls a new edge release out canary first: a canary that central never
hears from (its agent pointed at a closed port) stops the run before any other lane is touched,
and playbooks/rollback.yml takes it back. Then, under the central tier's load (simulated cameras
and a probe through the VIP, the live feed), playbooks/rollback.yml returns both centrals
(standby first, nginx shifted) and every lane to the release before the current one: nothing
lost or stored twice, the tier ready, the lanes heard by central.

Each test leaves the lanes on the release it found them on; the centrals end on the release
they ran before the central-tier suite's rolling upgrade (this checkout's, as site.yml left them).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from support.lab_tier import (
    Tier,
    build_release_wheel,
    make_cameras,
    operator_token,
    release_id,
    sh,
)
from tests.lab.harness import REPO, Lab
from tests.lab.test_central_tier import Drive, assert_nothing_lost, assert_tier_healthy

EDGES = ("edge1", "edge2")
CANARY = "edge2"  # made the canary through the edge_canary group (the default is edge1)
HEALTH_TIMEOUT_S = 12


def playbook(name: str, *extra: str, log: str) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on the lab's inventory; the output also goes to .lab/<log>.log."""
    done = subprocess.run(
        [
            str(REPO / ".venv/bin/ansible-playbook"),
            "-i",
            "inventory/lab",
            f"playbooks/{name}",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    (REPO / ".lab" / f"{log}.log").write_text(done.stdout + done.stderr)
    return done


def edge_release(host: str) -> str:
    return sh(host, "readlink /opt/parking-edge/current", timeout=20).strip().rsplit("/", 1)[-1]


def previous_central(central: str) -> str | None:
    """The release the central would return to: the other one kept, older than the current."""
    newest_first = sh(central, "ls -1t /opt/parking-central/releases", timeout=20).split()
    current = sh(central, "readlink /opt/parking-central/current", timeout=20).strip()
    if len(newest_first) != 2 or newest_first[0] != current.rsplit("/", 1)[-1]:
        return None
    return newest_first[1]


def heard_since(tier: Tier, camera_id: str) -> float:
    """Seconds since central took the camera's last heartbeat (`parking-central camera-status`)."""
    status = json.loads(tier.admin("camera-status", camera_id))
    return float(status["seconds_since_heartbeat"])


def camera_ids() -> dict[str, str]:
    inventory = yaml.safe_load((REPO / "inventory/lab/hosts.yml").read_text())
    hosts = inventory["all"]["children"]["lab"]["children"]["edge"]["hosts"]
    return {name: str(hosts[name].get("edge_camera_id", name)) for name in EDGES}


@pytest.fixture(scope="module")
def edge_wheel() -> Path:
    """One new edge release for the module: the second test finds it installed already on the
    lane the first one rolled back (kept as the newer release), which saves that lane a pip run."""
    return build_release_wheel("edge")


@pytest.fixture(scope="module")
def tier(lab: Lab) -> Tier:
    tier = Tier.from_inventory()
    if not tier.vip_ready():
        pytest.fail(f"the VIP {tier.vip} does not answer over TLS: converge site.yml first")
    return tier


def test_a_canary_central_does_not_hear_stops_the_edge_rollout(
    tier: Tier, edge_wheel: Path, tmp_path: Path
) -> None:
    before = {host: edge_release(host) for host in EDGES}
    new = release_id(edge_wheel)
    # edge2 is the canary (group edge_canary) and its agent talks to a closed port.
    extra_inventory = tmp_path / "canary.yml"
    extra_inventory.write_text(
        yaml.safe_dump(
            {
                "edge_canary": {
                    # the machine's closed port: refused at once (the VIP's drops, and waits)
                    "hosts": {CANARY: {"edge_central_url": "https://10.77.0.1:9"}},
                }
            }
        )
    )
    failed = playbook(
        "edge.yml",
        "-i",
        str(extra_inventory),
        "-e",
        f"edge_wheel={edge_wheel}",
        "-e",
        json.dumps({"edge_health_timeout_s": HEALTH_TIMEOUT_S}),
        log="rollout-canary",
    )
    out = failed.stdout
    assert failed.returncode != 0, "edge.yml went on although the canary was never heard"
    assert f"lane {CANARY} (camera {camera_ids()[CANARY]}): central" in out, out[-3000:]
    assert edge_release(CANARY) == new, "the canary did not get the new release"
    others = [host for host in EDGES if host != CANARY]
    for host in others:
        assert edge_release(host) == before[host], f"{host} was rolled out after a failed canary"
    assert "Roll out the other lanes" not in out, "the run went on to the next batch"

    # The canary goes back to where it was, its configuration as the inventory has it.
    back = playbook("rollback.yml", "--limit", CANARY, log="rollout-canary-rollback")
    assert back.returncode == 0, back.stdout[-3000:]
    assert {host: edge_release(host) for host in EDGES} == before
    assert heard_since(tier, camera_ids()[CANARY]) < 30, "the rolled-back canary is not heard"


# edge.yml over both lanes, then the rollback under load (and, run alone, the upgrade before it)
@pytest.mark.timeout(900)
def test_rollback_returns_centrals_and_lanes_to_their_previous_release_under_load(
    tier: Tier, edge_wheel: Path, tmp_path: Path
) -> None:
    run = secrets.token_hex(3)
    drive = Drive(tier, make_cameras(tier, run), operator_token(tier, run), tmp_path, set())
    # The centrals need a release before the current one: the central-tier suite's rolling
    # upgrade leaves one (site.yml's); run alone, this test upgrades first.
    if not all(previous_central(c) for c in tier.centrals):
        assert_nothing_lost(drive.run("upgrade"))
    central_target = {c: previous_central(c) for c in tier.centrals}
    assert all(central_target.values()), f"no release to return to: {central_target}"

    # The lanes get a second release through edge.yml (canary, then the rest, each checked).
    lanes_before = {host: edge_release(host) for host in EDGES}
    rolled = playbook("edge.yml", "-e", f"edge_wheel={edge_wheel}", log="rollout-edges")
    assert rolled.returncode == 0, rolled.stdout[-3000:]
    new = release_id(edge_wheel)
    assert {host: edge_release(host) for host in EDGES} == dict.fromkeys(EDGES, new)

    result = drive.run("rollback")
    after = {c: tier.release(c).rsplit("/", 1)[-1] for c in tier.centrals}
    assert after == central_target, f"centrals not back on their previous release: {after}"
    assert {host: edge_release(host) for host in EDGES} == lanes_before
    assert_nothing_lost(result)
    assert_tier_healthy(tier)
    for camera in camera_ids().values():
        assert heard_since(tier, camera) < 30, f"{camera} is not heard after the rollback"

    # A second run finds the hosts on their previous release already and changes nothing (one
    # central and one lane: the whole run again would cost the suite another minute).
    again = playbook("rollback.yml", "--limit", "central2:edge2", log="rollout-rollback-again")
    assert again.returncode == 0, again.stdout[-3000:]
    recap = again.stdout[again.stdout.rindex("PLAY RECAP") :]
    assert all("changed=0" in line for line in recap.splitlines() if "ok=" in line), recap

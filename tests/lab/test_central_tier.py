"""The central tier under faults, seen from an edge: nothing lost, nothing stored twice.

Simulated edge cameras (``parking-edge simulate``) and a probe send events to the VIP over TLS
from the machine while the active central's host crashes, the central process is killed -9,
the lb holding the VIP crashes and playbooks/upgrade.yml runs (bench/failover_central.py does
the work and prints the figures; here only behaviour is asserted). Every test leaves the tier
as it found it: crashed hosts powered on again, both centrals ready, one VIP holder.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.lab_tier import (
    Cameras,
    Result,
    Tier,
    make_cameras,
    operator_token,
    reset_outgoing,
    run_scenario,
    stop_resetting,
    wait_for,
)
from tests.lab.harness import Lab

RATE = 10.0
PROBE_RATE = 10.0


@dataclass
class Drive:
    tier: Tier
    cameras: Cameras
    token: str
    work: Path
    made: set[uuid.UUID]

    def run(self, scenario: str) -> Result:
        result, self.made = run_scenario(
            self.tier,
            scenario,
            self.cameras,
            self.token,
            self.work,
            self.made,
            rate=RATE,
            probe_rate=PROBE_RATE,
        )
        print(f"{scenario}: {result}")
        return result


@pytest.fixture(scope="module")
def drive(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Drive:
    tier = Tier.from_inventory()
    if not tier.vip_ready():
        pytest.fail(f"the VIP {tier.vip} does not answer over TLS: converge site.yml first")
    run = secrets.token_hex(3)
    return Drive(
        tier,
        make_cameras(tier, run),
        operator_token(tier, run),
        tmp_path_factory.mktemp("central-tier"),
        set(),
    )


def assert_tier_healthy(tier: Tier) -> None:
    for central in tier.centrals:
        wait_for(lambda c=central: tier.central_ready(c), f"{central} ready", 120)  # type: ignore[misc]
    wait_for(lambda: len(tier.vip_holders()) == 1, "exactly one lb holds the VIP", 30)
    wait_for(tier.vip_ready, "the VIP answers over TLS", 30)


def assert_nothing_lost(result: Result, *, probe_may_fail: bool = False) -> None:
    """Nothing lost or stored twice, ever, and the edge uploader never sees a failed send (its
    client sends a call again on a fresh connection while the VIP moves). The probe's requests
    (one attempt each; only a kept-alive connection closed unanswered is tried once more) may
    fail only where a host dies mid-request: its TCP connections die with it
    (docs/central-tier.md)."""
    assert result.events_made > 0, result
    assert result.events_lost == 0, f"events made but not stored: {result}"
    assert result.events_duplicated == 0, f"events stored twice or from nowhere: {result}"
    assert result.failed_sends == 0, f"the edge uploader saw failed sends: {result}"
    if not probe_may_fail:
        assert result.probe_failed == 0, f"probe requests failed (one attempt each): {result}"


def test_kill9_of_central_is_restarted_by_systemd_without_a_failed_send(drive: Drive) -> None:
    result = drive.run("kill9")
    assert result.recovery_s is not None, "systemd did not restart the central"
    assert_nothing_lost(result)
    assert_tier_healthy(drive.tier)


def test_crash_of_the_active_central_host_loses_nothing(drive: Drive) -> None:
    result = drive.run("central-crash")
    assert_nothing_lost(result, probe_may_fail=True)
    assert result.live_reconnect_s is not None, f"the live feed did not come back: {result}"
    assert_tier_healthy(drive.tier)


def test_crash_of_the_lb_holding_the_vip_moves_the_vip(drive: Drive) -> None:
    result = drive.run("lb-crash")
    assert result.vip_move_s is not None, f"the VIP never answered again: {result}"
    assert_nothing_lost(result, probe_may_fail=True)
    assert result.live_reconnect_s is not None, f"the live feed did not come back: {result}"
    assert_tier_healthy(drive.tier)


def test_rolling_upgrade_under_load_loses_nothing(drive: Drive) -> None:
    before = {c: drive.tier.release(c) for c in drive.tier.centrals}
    result = drive.run("upgrade")
    after = {c: drive.tier.release(c) for c in drive.tier.centrals}
    assert all(after[c] != before[c] for c in before), f"not every central upgraded: {after}"
    assert len(set(after.values())) == 1, f"centrals on different releases: {after}"
    assert_nothing_lost(result)
    assert_tier_healthy(drive.tier)


def test_a_central_cut_from_the_database_while_it_runs_the_duties_hands_them_on(
    drive: Drive,
) -> None:
    """Its packets to PostgreSQL answered with resets, the central's side closes at once but
    the server never hears of it: its lock session must not keep the duties (command expiry,
    offline cameras) from every central, as it did for hours before the server's keepalives
    (CI's short soak, seed 204). The server ends it 10 + 3 x 5 s after its last statement
    (roles/patroni's keepalives), a central takes the lock at its next tick (15 s): within 60 s
    of the cut. Central's own takeover of a silent holder (90 s, for a server without
    keepalives) took 77.6 s here and is tested in tests/integration/test_duties.py."""
    tier = drive.tier
    wait_for(lambda: tier.duties_runner() is not None, "a central runs the duties", 60)
    runner = tier.duties_runner()
    assert runner is not None
    reset_outgoing(runner, "tcp dport 5432")
    cut = time.monotonic()
    try:
        time.sleep(20)
    finally:
        stop_resetting(runner)

    def ticked_since_the_cut() -> bool:
        # The cut session's last statement came before the cut: silent longer than the cut ago.
        holder = tier.duties_holder()
        return holder is not None and holder[1] < time.monotonic() - cut - 1

    wait_for(ticked_since_the_cut, "a central runs the duties again", 40)
    print(f"duties run again {time.monotonic() - cut:.1f} s after the cut (20 s long)")
    assert_tier_healthy(tier)

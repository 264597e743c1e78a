"""The lab's failure helpers do what the HA tests will rely on: crash, power, cut."""

from __future__ import annotations

from tests.lab.harness import CURL_OK, CURL_TIMEOUT, Lab, tcp_ssh_answers, wait_until


def test_crash_kills_the_host_and_poweron_restores_it_converged(lab: Lab) -> None:
    address = lab.address("edge2")
    lab.run("crash", "edge2")
    assert lab.status()["edge2"] == "stopped"
    assert not tcp_ssh_answers(address), "a crashed host must not answer"

    lab.run("poweron", "edge2")
    assert lab.status()["edge2"] == "running"
    assert lab.ssh("edge2", "true").returncode == 0
    # Firewall and node_exporter come back by themselves at boot.
    ruleset = lab.sh("edge2", "nft list chain inet filter input").stdout
    assert "policy drop" in ruleset
    wait_until(
        lambda: lab.probe("mon1", "edge2", 9100) == CURL_OK,
        what="node_exporter on edge2 after boot",
    )
    assert lab.probe("edge1", "edge2", 9100) == CURL_TIMEOUT


def test_poweroff_shuts_down_cleanly_and_keeps_the_disk(lab: Lab) -> None:
    lab.sh("lb2", "echo kept > /var/tmp/lab-marker && sync")
    lab.run("poweroff", "lb2")
    assert lab.status()["lb2"] == "stopped"

    lab.run("poweron", "lb2")
    assert lab.sh("lb2", "cat /var/tmp/lab-marker").stdout.strip() == "kept"
    assert lab.sh("lb2", "systemctl is-system-running", check=False).stdout.strip() in {
        "running",
        "degraded",
    }


def test_cut_isolates_the_host_and_restore_reconnects_it(lab: Lab) -> None:
    target = lab.address("edge2")

    def ping_from_edge1() -> bool:
        return lab.sh("edge1", f"ping -c1 -W1 {target}", check=False).returncode == 0

    assert ping_from_edge1()
    lab.run("cut", "edge2")
    try:
        assert lab.status()["edge2"] == "cut"
        assert not ping_from_edge1(), "a cut host must not answer its neighbours"
        assert not tcp_ssh_answers(target), "a cut host must not answer the machine"
        # The host itself keeps running: it just lost its cable.
        assert lab.sh("edge2", "systemctl is-active ssh").stdout.strip() == "active"
    finally:
        lab.run("restore", "edge2")
    wait_until(ping_from_edge1, what="edge2 reachable after restore")
    assert lab.status()["edge2"] == "running"

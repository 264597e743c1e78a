"""What roles/common makes true on every lab host after playbooks/site.yml, seen from outside."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.lab.harness import CURL_OK, CURL_TIMEOUT, Lab, in_parallel

NODE_EXPORTER = 9100


def test_machine_keeps_ip_forward_off(lab: Lab) -> None:
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


def test_hosts_have_no_route_out_of_the_lab(lab: Lab) -> None:
    def routes(host: str) -> tuple[str, str, int]:
        default = lab.sh(host, "ip -4 route show default").stdout.strip()
        outside = lab.sh(host, "ip -4 route get 1.1.1.1", check=False)
        return host, default, outside.returncode

    for host, default, rc in in_parallel(routes, list(lab.hosts())):
        assert default == "", f"{host} has a default route: {default}"
        assert rc != 0, f"{host} can route to 1.1.1.1"


def test_node_exporter_answers_the_monitoring_host_everywhere(lab: Lab) -> None:
    monitor = next(iter(lab.hosts("monitoring")))

    def scrape(target: str) -> tuple[str, str]:
        url = f"http://{lab.address(target)}:{NODE_EXPORTER}/metrics"
        return target, lab.sh(monitor, f"curl -sS --max-time 5 {url}", check=False).stdout

    for target, metrics in in_parallel(scrape, list(lab.hosts())):
        assert "node_cpu_seconds_total" in metrics, f"{monitor} got no metrics from {target}"


def test_node_exporter_is_dropped_for_hosts_outside_monitoring(lab: Lab) -> None:
    prober = next(iter(lab.hosts("edge")))
    targets = [host for host in ("db1", "central1", "lb1", "mon1") if host in lab.hosts()]
    codes = in_parallel(lambda target: (target, lab.probe(prober, target, NODE_EXPORTER)), targets)
    assert codes == [(target, CURL_TIMEOUT) for target in targets]


def test_group_declared_port_opens_only_to_its_sources(lab: Lab) -> None:
    # inventory/lab/group_vars/central: port 8000 (the converged parking-central itself) from
    # the lb hosts and, for its /metrics, the monitoring host only.
    assert lab.probe("lb1", "central1", 8000) == CURL_OK
    assert lab.probe("mon1", "central1", 8000) == CURL_OK
    assert lab.probe("edge1", "central1", 8000) == CURL_TIMEOUT
    assert lab.probe("db1", "central1", 8000) == CURL_TIMEOUT


def test_undeclared_port_with_a_listener_is_dropped_not_refused(lab: Lab) -> None:
    lab.serve("db2", 8099)
    try:
        assert lab.probe("db2", "db2", 8099) == CURL_OK, "listener must answer its own host"
        assert (
            in_parallel(lambda source: lab.probe(source, "db2", 8099), ["mon1", "lb2", "db1"])
            == [CURL_TIMEOUT] * 3
        )
    finally:
        lab.stop_serving("db2", 8099)


def test_ssh_is_dropped_from_outside_the_admin_network(lab: Lab) -> None:
    assert lab.ssh("db1", "true").returncode == 0, "the machine (admin network) must get in"
    assert lab.probe("edge1", "db1", 22) == CURL_TIMEOUT


def test_root_and_passwords_cannot_log_in(lab: Lab) -> None:
    address = lab.address("central2")
    base = [
        "ssh",
        "-o", f"UserKnownHostsFile={lab.root}/.lab/ssh/known_hosts",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
    ]  # fmt: skip
    root = subprocess.run(
        [*base, "-i", f"{lab.root}/.lab/ssh/id_ed25519", f"root@{address}", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert root.returncode == 255, root.stderr
    assert "Permission denied" in root.stderr, root.stderr
    password = subprocess.run(
        [*base, "-o", "PubkeyAuthentication=no", f"ops@{address}", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Permission denied (publickey)" in password.stderr, password.stderr


def test_admin_gets_sudo_without_password(lab: Lab) -> None:
    done = lab.ssh("lb1", "sudo", "-n", "id", "-u")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_kernel_settings_are_in_effect(lab: Lab) -> None:
    values = lab.sh(
        "edge2", "sysctl -n net.ipv4.tcp_syncookies net.ipv4.conf.all.accept_redirects"
    ).stdout
    assert values.split() == ["1", "0"]


def test_journald_runs_with_the_size_limit(lab: Lab) -> None:
    # journald reports its effective cap when it (re)opens the persistent journal.
    lab.sh("mon1", "journalctl --flush --rotate")
    log = lab.sh("mon1", "journalctl -b -u systemd-journald --no-pager -o cat").stdout
    assert "max 1.0G" in log, log[-2000:]

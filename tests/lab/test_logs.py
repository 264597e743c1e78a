"""Every host's journal on the monitoring host (roles/logship), seen from outside: a JSON line
logged on a central host and on an edge host is found on the receiver by host and unit and by
its request / event id; lines logged while the receiver is down arrive once it is back (the
uploader's cursor); a stopped uploader shows in the receiver's last-entry metric
(ParkingLogsNotShipped); each host has its own file, and a host outside the inventory cannot
reach the receiver."""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from app.contract.logs import JsonFormatter
from tests.lab.harness import CURL_TIMEOUT, Lab, running_lab, wait_until

REMOTE = "/var/log/journal/remote"
METRICS = "/var/lib/prometheus/node-exporter/logship.prom"
# journal-upload retries every 10 s (logship_upload_retry_sec) after the receiver was away.
ARRIVAL_S = 60


@dataclass(frozen=True)
class Hosts:
    lab: Lab
    receiver: str
    central: str
    edge: str


@pytest.fixture(scope="module")
def hosts() -> Hosts:
    # Only these three need to run: `LAB_HOSTS='mon1 central1 edge1'` is enough for this file.
    lab = running_lab("monitoring", "monitoring host")
    central, edge = next(iter(lab.hosts("central"))), next(iter(lab.hosts("edge")))
    running_lab(f"{central}:{edge}", "a central and an edge host")
    return Hosts(lab, next(iter(lab.hosts("monitoring"))), central, edge)


def _line(service: str, **fields: str) -> str:
    """One line exactly as central / the edge agent write it (app/contract/logs.py)."""
    record = logging.LogRecord(service, logging.INFO, __file__, 0, "lab log line", (), None)
    record.__dict__.update(fields)
    return JsonFormatter(service=service).format(record)


def _log(hosts: Hosts, host: str, unit: str, line: str) -> None:
    """Write one line to the host's journal from a unit of its own, as a service does."""
    hosts.lab.sh(
        host,
        f"systemd-run --quiet --wait --collect --unit={unit} --description=lab-log-line "
        f"/bin/echo {shlex.quote(line)}",
    )


def _remote(hosts: Hosts, *args: str) -> list[dict[str, str]]:
    """Entries of the receiver's journal files matching journalctl arguments (-o json)."""
    command = " ".join(["journalctl", f"--directory={REMOTE}", "-o", "json", "--no-pager", *args])
    done = hosts.lab.sh(hosts.receiver, command, check=False)
    return [json.loads(row) for row in done.stdout.splitlines() if row.startswith("{")]


def _messages(hosts: Hosts, *args: str) -> list[str]:
    return [str(entry.get("MESSAGE", "")) for entry in _remote(hosts, *args)]


def _arrives(hosts: Hosts, host: str, unit: str, line: str, timeout: float = ARRIVAL_S) -> None:
    wait_until(
        lambda: line in _messages(hosts, f"_HOSTNAME={host}", f"_SYSTEMD_UNIT={unit}"),
        what=f"{unit} line of {host} on {hosts.receiver}",
        timeout=timeout,
        interval=1,
    )


def _last_entries(hosts: Hosts) -> dict[str, float]:
    """Run the receiver's metrics writer now; host -> newest entry, as node_exporter serves it."""
    hosts.lab.sh(hosts.receiver, "systemctl start parking-logship-metrics.service")
    done = hosts.lab.sh(hosts.receiver, "curl -sS http://127.0.0.1:9100/metrics")
    last: dict[str, float] = {}
    for row in done.stdout.splitlines():
        if row.startswith("parking_logship_last_entry_timestamp_seconds{"):
            labels, value = row.rsplit(" ", 1)
            last[labels.split('host="', 1)[1].split('"', 1)[0]] = float(value)
    return last


@pytest.fixture
def receiver_down(hosts: Hosts) -> Iterator[None]:
    units = "systemd-journal-remote.socket systemd-journal-remote.service"
    hosts.lab.sh(hosts.receiver, f"systemctl stop {units}")
    try:
        yield
    finally:
        hosts.lab.sh(hosts.receiver, "systemctl start systemd-journal-remote.socket")


@pytest.fixture
def edge_uploader_stopped(hosts: Hosts) -> Iterator[None]:
    hosts.lab.sh(hosts.edge, "systemctl stop systemd-journal-upload.service")
    try:
        yield
    finally:
        hosts.lab.sh(hosts.edge, "systemctl start systemd-journal-upload.service")


def test_lines_of_central_and_edge_are_found_by_host_unit_and_id(hosts: Hosts) -> None:
    request_id, event_id = uuid.uuid4().hex, str(uuid.uuid4())
    central_unit = f"lab-logs-central-{request_id[:8]}.service"
    edge_unit = f"lab-logs-edge-{request_id[:8]}.service"
    central_line = _line(
        "parking-central", request_id=request_id, event_id=event_id, outcome="stored"
    )
    edge_line = _line("parking-edge", event_id=event_id, camera_id="lab-gate", outcome="delivered")
    _log(hosts, hosts.central, central_unit, central_line)
    _log(hosts, hosts.edge, edge_unit, edge_line)

    _arrives(hosts, hosts.central, central_unit, central_line)
    _arrives(hosts, hosts.edge, edge_unit, edge_line)
    # The host of a line is its sender's, not the receiver's: no mix-up between hosts.
    assert central_line not in _messages(hosts, f"_HOSTNAME={hosts.edge}")

    # By request id and by event id across hosts: journalctl's own --grep on the line...
    by_request = _remote(hosts, "--grep", shlex.quote(f'"request_id": "{request_id}"'))
    assert [(e["_HOSTNAME"], e["_SYSTEMD_UNIT"]) for e in by_request] == [
        (hosts.central, central_unit)
    ]
    by_event = _remote(hosts, "--grep", shlex.quote(f'"event_id": "{event_id}"'))
    assert {e["_HOSTNAME"] for e in by_event} == {hosts.central, hosts.edge}
    # ...and the runbook's jq filter on the receiver (docs/runbooks/logs.md).
    jq = hosts.lab.sh(
        hosts.receiver,
        f"journalctl --directory={REMOTE} -o json --no-pager | jq -c --arg id {event_id} "
        "'{host: ._HOSTNAME} + (.MESSAGE | fromjson? // empty) | select(.event_id == $id)'",
    )
    found = [json.loads(row) for row in jq.stdout.splitlines()]
    assert sorted((row["host"], row["service"]) for row in found) == sorted(
        [(hosts.central, "parking-central"), (hosts.edge, "parking-edge")]
    )


def test_the_services_own_units_and_the_heartbeat_are_shipped(hosts: Hosts) -> None:
    """Every host's heartbeat (parking-log-heartbeat.timer, once at its start, then every 5
    minutes) is on the receiver; where the tiers are converged, lines of the real units too."""
    for host in (hosts.central, hosts.edge, hosts.receiver):
        assert _remote(hosts, f"_HOSTNAME={host}", "SYSLOG_IDENTIFIER=parking-log-heartbeat"), (
            f"no heartbeat of {host} on {hosts.receiver}"
        )
    for host, unit in (
        (hosts.central, "parking-central.service"),
        (hosts.edge, "parking-edge.service"),
    ):
        if hosts.lab.sh(host, f"systemctl is-active {unit}", check=False).returncode != 0:
            continue
        assert _remote(hosts, f"_HOSTNAME={host}", f"_SYSTEMD_UNIT={unit}", "-n", "1"), (
            f"no line of {unit} from {host} on {hosts.receiver}"
        )


def test_lines_logged_while_the_receiver_is_down_arrive_after_it_is_back(
    hosts: Hosts, receiver_down: None
) -> None:
    event_id = str(uuid.uuid4())
    unit = f"lab-logs-outage-{event_id[:8]}.service"
    line = _line("parking-edge", event_id=event_id, outcome="queued")
    _log(hosts, hosts.edge, unit, line)
    # The uploader cannot deliver (connection refused): it exits and tries again every 10 s.
    time.sleep(3)
    assert line not in _messages(hosts, f"_HOSTNAME={hosts.edge}", f"_SYSTEMD_UNIT={unit}")

    hosts.lab.sh(hosts.receiver, "systemctl start systemd-journal-remote.socket")
    _arrives(hosts, hosts.edge, unit, line)
    # Once: the cursor resumes after the last delivered entry, nothing is sent twice.
    assert _messages(hosts, f"_HOSTNAME={hosts.edge}", f"_SYSTEMD_UNIT={unit}").count(line) == 1


def test_a_stopped_uploader_shows_in_the_last_entry_metric(
    hosts: Hosts, edge_uploader_stopped: None
) -> None:
    started = time.time()
    tag = uuid.uuid4().hex[:8]
    central_line = _line("parking-central", request_id=tag)
    edge_line = _line("parking-edge", event_id=tag)
    _log(hosts, hosts.edge, f"lab-logs-quiet-{tag}.service", edge_line)
    _log(hosts, hosts.central, f"lab-logs-alive-{tag}.service", central_line)
    _arrives(hosts, hosts.central, f"lab-logs-alive-{tag}.service", central_line)

    last = _last_entries(hosts)
    assert last[hosts.central] >= started
    assert last[hosts.edge] < started, "the stopped uploader's host looks as if it shipped"
    # Every inventory host has a series, also one that never shipped.
    assert set(hosts.lab.hosts("all")) <= set(last)

    hosts.lab.sh(hosts.edge, "systemctl start systemd-journal-upload.service")
    _arrives(hosts, hosts.edge, f"lab-logs-quiet-{tag}.service", edge_line)
    assert _last_entries(hosts)[hosts.edge] >= started


def test_each_host_has_its_file_and_only_inventory_hosts_reach_the_receiver(
    hosts: Hosts,
) -> None:
    """Debian 12's journal-remote is built without GnuTLS: it cannot check client certificates
    ("Certificate checking disabled"). Who may upload is the firewall's inventory list, and
    the receiver splits its files by the sender's address, which that list pins."""
    files = hosts.lab.sh(hosts.receiver, f"ls {REMOTE}").stdout.split()
    for host in (hosts.central, hosts.edge, hosts.receiver):
        assert f"remote-{hosts.lab.address(host)}.journal" in files, files
    # The machine (the admin network, not an inventory host) is dropped: no answer at all.
    done = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "--max-time", "3",
         f"https://{hosts.lab.address(hosts.receiver)}:19532/upload"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert done.returncode == CURL_TIMEOUT, done.stderr

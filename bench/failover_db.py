"""Database failover figures in the lab: write unavailability, acknowledged rows lost, switchover.

    .venv/bin/python bench/failover_db.py [--cases crash,cut,switchover] [--no-bring-up]

Boots db1-db3 and backup1 (lab/lab up etcd db backup) and converges playbooks/database.yml
unless they already answer. A writer on the machine inserts one row per transaction through
the multi-host libpq URL central uses (every db host, target_session_attrs=read-write) and
records every commit the server acknowledged. Per case it finds the leader (Patroni's
/primary), breaks it (host crash: kill -9 of its nspawn; cable cut; planned switchover
through the REST API), measures the longest time no commit was acknowledged, then counts
acknowledged ids missing on the new primary. A crashed or cut leader is brought back and
must stream from the new primary again. The last line is one JSON object:
write_unavailable_s (host crash), write_unavailable_cut_s, switchover_s (each the worst of
its runs: repeat a case in --cases to run it again), acked_rows_lost (all runs), runs_s,
rejoin_s and every run's details.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import itertools
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import lab_pki

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "lab" / "lab"
PATRONI_PORT = 8008
ETCD_PORT = 2379
# etcd and Patroni want a client certificate from the internal CA: on a db host, the member's.
ETCD_CURL_TLS = (
    "--cacert", "/etc/patroni/tls/ca.crt",
    "--cert", "/etc/patroni/tls/patroni.crt",
    "--key", "/etc/patroni/tls/patroni.key",
)  # fmt: skip


def lab(*args: str, check: bool = True, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(LAB), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"lab/lab {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout


def db_hosts() -> dict[str, str]:
    rows = (line.split() for line in lab("hosts", "db").splitlines() if line.strip())
    return {row[0]: row[1] for row in rows}


@functools.cache
def rest_tls() -> ssl.SSLContext:
    """Patroni's REST API: the lab CA's server certificates, the machine's client one."""
    return lab_pki.admin().context()


def lab_secret(name: str) -> str:
    """The lab's generated password `name` (inventory/lab/group_vars/db: sha256 of key:name)."""
    seed = (REPO / ".lab" / "ssh" / "id_ed25519").read_text().rstrip()
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def conninfo(hosts: dict[str, str]) -> str:
    """What central's URL says, in libpq form, plus timeouts that notice a silent peer."""
    addresses = ",".join(hosts[name] for name in sorted(hosts))
    ports = ",".join("5432" for _ in hosts)
    return (
        f"host={addresses} port={ports} dbname=parking user=parking "
        f"password={lab_secret('central_db')} target_session_attrs=read-write "
        "connect_timeout=2 tcp_user_timeout=3000 "
        "keepalives=1 keepalives_idle=5 keepalives_interval=1 keepalives_count=3 "
        + lab_pki.admin().libpq()  # TLS with a client certificate, as central dials
    )


def single_host(hosts: dict[str, str], name: str) -> str:
    """The writer's connection string, pinned to one host (to read what it holds)."""
    pinned = {name: hosts[name]}
    return conninfo(pinned).replace(" target_session_attrs=read-write", "")


def rest(address: str, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"https://{address}:{PATRONI_PORT}{path}", data=data, method=method
    )
    if method != "GET":
        token = base64.b64encode(f"patroni:{lab_secret('patroni_restapi')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=3, context=rest_tls()) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def cluster(address: str) -> list[dict[str, Any]]:
    try:
        url = f"https://{address}:{PATRONI_PORT}/cluster"
        with urllib.request.urlopen(url, timeout=3, context=rest_tls()) as a:
            members: list[dict[str, Any]] = json.load(a)["members"]
            return members
    except (OSError, ValueError, KeyError):
        return []


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> float:
    """Poll a real condition; return the seconds it took, raise saying what never happened."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not true after {timeout:.0f}s")


def leader(hosts: dict[str, str]) -> str | None:
    for name, address in sorted(hosts.items()):
        if rest(address, "/primary") == 200:
            return name
    return None


def etcd_leader(hosts: dict[str, str]) -> str | None:
    """The etcd member that leads (etcd runs on the db hosts; its port is closed to us)."""
    for name in sorted(hosts):
        done = subprocess.run(
            [
                str(LAB),
                "exec",
                name,
                "curl",
                "-sS",
                "--max-time",
                "3",
                "-XPOST",
                "-d",
                "{}",
                *ETCD_CURL_TLS,
                f"https://127.0.0.1:{ETCD_PORT}/v3/maintenance/status",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        try:
            status = json.loads(done.stdout)
        except ValueError:
            continue
        if status.get("leader") == status.get("header", {}).get("member_id"):
            return name
    return None


def sync_standby(address: str) -> str | None:
    return next((m["name"] for m in cluster(address) if m["role"] == "sync_standby"), None)


def healthy(hosts: dict[str, str]) -> bool:
    """One leader, every other member streaming from it, one of them the synchronous standby."""
    for address in hosts.values():
        members = cluster(address)
        if len(members) != len(hosts):
            continue
        roles = sorted(m["role"] for m in members)
        streaming = all(m["state"] == "streaming" for m in members if m["role"] != "leader")
        return streaming and roles.count("leader") == 1 and "sync_standby" in roles
    return False


@dataclass
class Writer:
    """Inserts ids 1, 2, 3... one transaction each; keeps those whose commit was acknowledged."""

    dsn: str
    acked: list[tuple[int, float]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS failover_probe (id bigint PRIMARY KEY)")
            conn.execute("TRUNCATE failover_probe")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_id = 1
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute("INSERT INTO failover_probe (id) VALUES (%s)", (next_id,))
                self.acked.append((next_id, time.monotonic()))  # the commit came back: acked
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            next_id += 1
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def acked_since(self, moment: float) -> int:
        return sum(1 for _, at in self.acked if at > moment)

    def longest_gap_after(self, moment: float) -> float:
        """Longest stretch without an acknowledged commit, from `moment` on."""
        times = [moment] + [at for _, at in self.acked if at > moment]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def lost_rows(dsn: str, writer: Writer) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM failover_probe")}
    return sum(1 for ident, _ in writer.acked if ident not in present)


def run_case(case: str, hosts: dict[str, str]) -> dict[str, Any]:
    wait_for(lambda: healthy(hosts), "cluster healthy before the case", timeout=180)
    old = leader(hosts)
    assert old is not None, "no leader"
    dsn = conninfo(hosts)
    writer = Writer(dsn)
    writer.start()
    wait_for(lambda: len(writer.acked) > 50, "writer running")
    etcd_lead = etcd_leader(hosts)
    moment = time.monotonic()
    if case == "crash":
        lab("crash", old)
    elif case == "cut":
        lab("cut", old)
    else:
        wait_for(lambda: sync_standby(hosts[old]) is not None, "a sync standby to hand over to")
        candidate = sync_standby(hosts[old])
        status = rest(hosts[old], "/switchover", "POST", {"leader": old, "candidate": candidate})
        assert status == 200, f"switchover refused: HTTP {status}"
    # Writes are back once another member is primary and 20 commits came back after that.
    others = {k: v for k, v in hosts.items() if k != old}
    wait_for(lambda: leader(others) is not None, f"a new primary after {case}", 120)
    promoted = time.monotonic()
    promoted_s = promoted - moment
    wait_for(lambda: writer.acked_since(promoted) >= 20, f"writes resume after {case}", 60)
    writer.stop()
    new = leader(others)
    assert new is not None, "the new primary went away"
    new_dsn = single_host(hosts, new)
    result: dict[str, Any] = {
        "case": case,
        "old_leader": old,
        "etcd_leader": etcd_lead,
        "new_leader": new,
        "new_primary_after_s": round(promoted_s, 2),
        "write_unavailable_s": round(writer.longest_gap_after(moment), 2),
        "acked_rows": len(writer.acked),
        "acked_rows_lost": lost_rows(new_dsn, writer),
        "writer_errors": writer.errors,
    }
    if case != "switchover":
        lab("poweron" if case == "crash" else "restore", old)
        result["rejoin_s"] = round(wait_for(lambda: healthy(hosts), f"{old} rejoins", 180), 1)
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def bring_up(hosts: dict[str, str]) -> None:
    if leader(hosts) is not None:
        return
    lab("up", "etcd", "db", "backup")
    subprocess.run(
        [str(REPO / "lab" / "converge.sh"), "--playbook", "playbooks/database.yml"],
        cwd=REPO,
        check=True,
    )


def worst(runs: list[dict[str, Any]], key: str) -> float | None:
    """The worst (largest) figure over the repeated runs of one case, None if not run."""
    return max((float(run[key]) for run in runs), default=None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", default="crash,cut,switchover", help="comma-separated; repeat a case to rerun it"
    )
    parser.add_argument("--no-bring-up", action="store_true")
    args = parser.parse_args()
    hosts = db_hosts()
    if not args.no_bring_up:
        bring_up(hosts)
    runs: dict[str, list[dict[str, Any]]] = {"crash": [], "cut": [], "switchover": []}
    for case in args.cases.split(","):
        if case not in runs:
            parser.error(f"unknown case {case!r}; known: {', '.join(runs)}")
        runs[case].append(run_case(case, hosts))
    summary: dict[str, Any] = {
        # Worst run of each case: the goal (<= 20 s on a host crash) must hold for every run.
        "write_unavailable_s": worst(runs["crash"], "write_unavailable_s"),
        "write_unavailable_cut_s": worst(runs["cut"], "write_unavailable_s"),
        "acked_rows_lost": sum(r["acked_rows_lost"] for case in runs.values() for r in case),
        "switchover_s": worst(runs["switchover"], "write_unavailable_s"),
        "runs_s": {
            case: [r["write_unavailable_s"] for r in case_runs] for case, case_runs in runs.items()
        },
        "rejoin_s": {
            case: [r["rejoin_s"] for r in case_runs]
            for case, case_runs in runs.items()
            if case != "switchover"
        },
        "cases": runs,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

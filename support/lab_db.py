"""The database cluster in the lab: its hosts, Patroni's and etcd's REST APIs over mutual TLS,
the leader, a writer that records every acknowledged commit, and the rows lost.

Shared by ``bench/failover_db.py`` (which prints the figures) and by
``tests/lab/test_database.py`` and ``tests/lab/test_internal_tls.py`` (which assert them); the
bench's docstring describes the scenario.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from support import lab_cli, lab_pki
from support.lab_cli import LAB

REPO = Path(__file__).resolve().parents[1]
PATRONI_PORT = 8008
ETCD_PORT = 2379
# etcd and Patroni want a client certificate from the internal CA: on a db host, the member's.
ETCD_CURL_TLS = (
    "--cacert", "/etc/patroni/tls/ca.crt",
    "--cert", "/etc/patroni/tls/patroni.crt",
    "--key", "/etc/patroni/tls/patroni.key",
)  # fmt: skip


def lab(*args: str, check: bool = True, timeout: float = 600) -> str:
    """``lab/lab`` with a longer default wait (a database host's steps are slow)."""
    return lab_cli.lab(*args, check=check, timeout=timeout)


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
    """Inserts ids 1, 2, 3... into ``table``, one transaction each; keeps (id, ``clock()`` at the
    acknowledgement) for every commit that came back. ``pause`` stops it between transactions."""

    dsn: str
    table: str = "failover_probe"
    clock: Callable[[], float] = time.monotonic
    retry_pause_s: float = 0.05
    acked: list[tuple[int, float]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _paused: threading.Event = field(default_factory=threading.Event)
    _idle: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            table = sql.Identifier(self.table)
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (id bigint PRIMARY KEY)").format(table)
            )
            conn.execute(sql.SQL("TRUNCATE {}").format(table))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        insert = sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(sql.Identifier(self.table))
        next_id = 1
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            if self._paused.is_set():
                self._idle.set()
                time.sleep(0.01)
                continue
            self._idle.clear()
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute(insert, (next_id,))
                self.acked.append((next_id, self.clock()))  # the commit came back: acked
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(self.retry_pause_s)
            next_id += 1
        if conn is not None:
            conn.close()

    def pause(self) -> None:
        """Stop between two transactions and wait until no commit is in flight."""
        self._paused.set()
        if not self._idle.wait(timeout=30):
            raise TimeoutError("writer did not pause")

    def resume(self) -> None:
        self._paused.clear()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def acked_after(self, moment: float) -> list[tuple[int, float]]:
        return [(ident, at) for ident, at in self.acked if at > moment]

    def acked_since(self, moment: float) -> int:
        return len(self.acked_after(moment))

    def longest_gap_after(self, moment: float) -> float:
        """Longest stretch without an acknowledged commit, from `moment` on."""
        times = [moment] + [at for _, at in self.acked_after(moment)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def lost_rows(dsn: str, writer: Writer) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        present = {
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT id FROM {}").format(sql.Identifier(writer.table))
            )
        }
    return sum(1 for ident, _ in writer.acked if ident not in present)

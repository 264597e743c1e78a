"""The database tier after playbooks/site.yml: etcd + Patroni + pgBackRest, seen from outside.

A writer inserts through the multi-host URL central uses and keeps every id whose commit
came back; the leader's host is crashed, then cut off, then switched over by the playbook:
every acknowledged row must be on the new primary and the old leader must stream again.
Then a backup and the restore drill (playbooks/restore.yml) onto the scratch host. Timings
are the bench's business (bench/failover_db.py), not asserted here. Each test leaves the
cluster healthy (one leader, the others streaming, a synchronous standby) for the next.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest

from support.lab_db import (
    ETCD_CURL_TLS,
    Writer,
    cluster,
    conninfo,
    healthy,
    leader,
    lost_rows,
    single_host,
    sync_standby,
    wait_for,
)
from tests.lab.harness import REPO, Lab, running_lab

PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"


@pytest.fixture(scope="module")
def lab() -> Lab:
    """Only the database tier's hosts need to run (others may be mid-test of their own)."""
    return running_lab("db:etcd:backup:db_restore", "database tier hosts")


@pytest.fixture(scope="module")
def db(lab: Lab) -> dict[str, str]:
    hosts = lab.hosts("db")
    wait_for(lambda: healthy(hosts), "database cluster healthy", timeout=120)
    return hosts


@pytest.fixture
def writer(db: dict[str, str]) -> Iterator[Writer]:
    running = Writer(conninfo(db))
    running.start()
    wait_for(lambda: len(running.acked) > 30, "writer running", timeout=30)
    yield running
    running.stop()


def playbook(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(PLAYBOOK), "-i", "inventory/lab", f"playbooks/{name}", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-1000:]}"
    return done


def break_leader_and_check(lab: Lab, db: dict[str, str], writer: Writer, how: str) -> None:
    """Crash or cut the leader under the writer: no acknowledged row lost, old leader rejoins."""
    old = leader(db)
    assert old is not None
    before = len(writer.acked)
    lab.run(how, old)
    try:
        others = {name: address for name, address in db.items() if name != old}
        wait_for(lambda: leader(others) is not None, f"a new primary after {how}", 90)
        promoted = time.monotonic()
        wait_for(lambda: writer.acked_since(promoted) >= 20, f"writes resume after {how}", 60)
    finally:
        lab.run("poweron" if how == "crash" else "restore", old)
    writer.stop()
    new = leader(others)
    assert new is not None and new != old
    assert len(writer.acked) > before + 20
    assert lost_rows(single_host(db, new), writer) == 0, "an acknowledged commit is missing"

    def rejoined() -> bool:
        members = {m["name"]: m for m in cluster(db[new])}
        back, lead = members.get(old), members.get(new)
        return (
            healthy(db)  # one leader, every other member streaming, a sync standby
            and back is not None
            and lead is not None
            and lead["role"] == "leader"
            and back["state"] == "streaming"
            and back.get("timeline") == lead.get("timeline")  # rewound onto the new timeline
        )

    wait_for(rejoined, f"{old} streams from {new} on its timeline, a sync standby again", 150)


def test_tier_converged(lab: Lab, db: dict[str, str]) -> None:
    members = cluster(next(iter(db.values())))
    assert sorted(m["name"] for m in members) == sorted(db)
    assert sorted(m["role"] for m in members) == ["leader", "replica", "sync_standby"]
    first = next(iter(db))
    health = lab.sh(
        first, f"curl -sS {' '.join(ETCD_CURL_TLS)} https://127.0.0.1:2379/health"
    ).stdout
    assert json.loads(health)["health"] == "true"
    # Central's role can log in through the multi-host URL and lands on the primary.
    with psycopg.connect(conninfo(db), autocommit=True) as conn:
        row = conn.execute("SELECT current_user, pg_is_in_recovery()").fetchone()
    assert row == ("parking", False)
    # The repository has the stanza, a backup, and the metric node_exporter exports.
    repo = next(iter(lab.hosts("backup")))
    info = json.loads(
        lab.sh(
            repo, "runuser -u pgbackrest -- pgbackrest --stanza=parking --output=json info"
        ).stdout
    )
    assert info[0]["status"]["code"] == 0
    assert info[0]["backup"], "no backup in the repository"
    metrics = lab.sh(repo, "curl -sS http://127.0.0.1:9100/metrics").stdout
    assert 'pgbackrest_last_success_timestamp_seconds{stanza="parking",type="full"}' in metrics


def test_leader_host_crash_loses_no_acknowledged_commit(
    lab: Lab, db: dict[str, str], writer: Writer
) -> None:
    break_leader_and_check(lab, db, writer, "crash")


def test_leader_network_cut_loses_no_acknowledged_commit(
    lab: Lab, db: dict[str, str], writer: Writer
) -> None:
    break_leader_and_check(lab, db, writer, "cut")


def test_planned_switchover_loses_nothing(db: dict[str, str], writer: Writer) -> None:
    old = leader(db)
    before = len(writer.acked)
    playbook("switchover.yml")
    others = {name: address for name, address in db.items() if name != old}
    new = leader(others)
    assert new is not None
    switched = time.monotonic()
    wait_for(lambda: writer.acked_since(switched) >= 20, "writes go on after the switchover", 30)
    assert len(writer.acked) > before
    writer.stop()
    assert lost_rows(single_host(db, new), writer) == 0
    wait_for(lambda: healthy(db), "old leader streams from the new one", 60)


def test_a_replica_behind_the_retained_wal_catches_up_from_the_archive(
    lab: Lab, db: dict[str, str]
) -> None:
    """A replica away while the primary wrote more WAL than it keeps (and its slot moved on, as
    after a failover: the new leader's slot for it starts at the leader's position) fetches
    the missing segments from the pgBackRest archive (`patroni_restore_command`) and streams
    again; without a restore_command it asks the primary for removed WAL forever (the soak's
    2-hour run, docs/soak.md)."""
    lead = leader(db)
    assert lead is not None
    sync = sync_standby(db[lead])
    away = next(name for name in sorted(db) if name not in (lead, sync))

    def psql(sql: str, **values: str) -> str:
        """``sql`` as the superuser on the leader, ``:'name'`` bound to ``values`` (psql -v)."""
        bound = " ".join(f"-v {name}={shlex.quote(v)}" for name, v in values.items())
        command = (
            f"printf '%s\\n' {shlex.quote(sql)} | runuser -u postgres -- "
            f"psql -d parking -Atq -v ON_ERROR_STOP=1 {bound}"
        )
        return lab.sh(lead, command).stdout.strip()

    slot = away.replace("-", "_")
    position = psql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = :'s'", s=slot)
    assert position, f"no slot for {away} on {lead}"
    lab.sh(away, "systemctl stop patroni", timeout=90)
    try:
        # The primary writes and archives 24 segments, more than wal_keep_size (256 MB = 16)
        # keeps, and the replica's slot moves to the primary's position (where a new leader's
        # slot for it starts after a failover), so nothing holds the replica's WAL any more.
        psql(
            "DO $$ BEGIN FOR i IN 1..24 LOOP"
            " PERFORM pg_logical_emit_message(false, 'parking-test', 'wal');"
            " PERFORM pg_switch_wal(); END LOOP; END $$;"
        )
        psql("SELECT pg_replication_slot_advance(:'s', pg_current_wal_lsn())", s=slot)
        last = psql("SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")
        wait_for(
            lambda: psql("SELECT last_archived_wal >= :'w' FROM pg_stat_archiver", w=last) == "t",
            f"{lead} archived up to {last}",
            120,
        )
        psql("CHECKPOINT;")
        psql("CHECKPOINT;")
        needed = psql("SELECT pg_walfile_name(:'p')", p=position)
        kept = psql("SELECT count(*) FROM pg_ls_waldir() WHERE name = :'n'", n=needed)
        assert kept == "0", f"{lead} still keeps {needed}: the test did not put {away} behind"
    finally:
        lab.sh(away, "systemctl start patroni", timeout=90)

    def streams() -> bool:
        members = {m["name"]: m for m in cluster(db[lead])}
        return healthy(db) and members.get(away, {}).get("state") == "streaming"

    wait_for(streams, f"{away} streams again after reading the archive", 180)


def test_backup_then_restore_drill_matches_the_source(lab: Lab, db: dict[str, str]) -> None:
    dsn = conninfo(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS restore_drill (id bigint PRIMARY KEY)")
        conn.execute("TRUNCATE restore_drill")
        conn.execute("INSERT INTO restore_drill SELECT generate_series(1, 500)")
    repo = next(iter(lab.hosts("backup")))
    lab.sh(repo, "systemctl start pgbackrest-backup@diff.service", timeout=180)
    info = json.loads(
        lab.sh(
            repo, "runuser -u pgbackrest -- pgbackrest --stanza=parking --output=json info"
        ).stdout
    )
    assert any(b["type"] == "diff" for b in info[0]["backup"]), "the differential backup is missing"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO restore_drill SELECT generate_series(501, 700)")

    # The playbook fails unless every table's count on the copy equals the source's.
    playbook("restore.yml")
    scratch = next(iter(lab.hosts("db_restore")))
    copied = lab.sh(
        scratch, "runuser -u postgres -- psql -Atc 'SELECT count(*) FROM restore_drill' parking"
    ).stdout.strip()
    assert copied == "700", "rows written after the backup must come back from the archived WAL"

"""Disaster-recovery drill in the lab: every database host and repo1's site lost, back from repo2.

    .venv/bin/python bench/dr_drill.py [--repo 2] [--write-s 90] [--no-bring-up] [--no-pitr]

Boots db1-db3, backup1, backup2 and scratch1 (lab/lab up etcd db backup db_restore) and
converges playbooks/database.yml unless the cluster already answers. A writer on the machine
inserts one row per transaction through the multi-host URL central uses (every db host,
target_session_attrs=read-write, central's role and TLS) and records every acknowledged id with
the wall-clock time its commit came back. Part way, the writer pauses for two seconds and the
middle of that pause is the point-in-time target (no commit is in flight then, so "acknowledged
before it" is exact). After --write-s seconds the other repository's host (backup1 for --repo 2)
and every db host are crashed at the same moment (kill -9 of their nspawn: power loss), the db
hosts' disks are removed and they boot again blank (new machines), and playbooks/recover.yml
-e recover_repo=N rebuilds etcd and Patroni from that repository while the writer keeps trying.

One JSON line on stdout:
- rto_s: destruction (every crashed host dead) -> the writer's first acknowledged commit on the
  recovered cluster (provision_s: the blank hosts booting; recover_playbook_s: recover.yml's
  own run, which goes on after the primary answers: stanza check, central);
- acked_rows_lost: ids acknowledged before the destruction and missing from the recovered primary;
- rpo_s: destruction time minus the acknowledgement time of the oldest lost row (how much of
  the past was lost; 0 if none); newest_lost_age_s: the same for the newest lost row;
- pitr_ok: playbooks/restore.yml -e restore_target_time=T -e restore_repo=N on scratch1 (from the
  recovered repository, repo1 still down) has exactly the ids acknowledged before T.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.lab_db import (
    REPO,
    Writer,
    conninfo,
    db_hosts,
    healthy,
    lab,
    leader,
    single_host,
    wait_for,
)

PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
LOGS = REPO / ".lab"
SELECT_IDS = "SELECT id FROM dr_probe ORDER BY id"


def dr_writer(dsn: str) -> Writer:
    """The lab's acknowledged-id writer on its own table, stamped with wall-clock times (the
    point-in-time target is a wall-clock instant)."""
    return Writer(dsn, table="dr_probe", clock=time.time, retry_pause_s=0.2)


def playbook(name: str, log: str, *extra: str) -> float:
    """Run a playbook against the lab, its output in .lab/LOG; return its wall time."""
    started = time.monotonic()
    with (LOGS / log).open("w") as out:
        done = subprocess.run(
            [str(PLAYBOOK), "-i", "inventory/lab", f"playbooks/{name}", *extra],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed (rc {done.returncode}); log in .lab/{log}")
    return time.monotonic() - started


def bring_up(hosts: dict[str, str]) -> None:
    if leader(hosts) is not None:
        return
    lab("up", "etcd", "db", "backup", "db_restore")
    subprocess.run(
        [str(REPO / "lab" / "converge.sh"), "--playbook", "playbooks/database.yml"],
        cwd=REPO,
        check=True,
    )


def repo_hosts() -> dict[int, str]:
    """Repository index -> backup host (pgbackrest_repo_index in inventory/lab/hosts.yml)."""
    listed = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-inventory"), "-i", "inventory/lab", "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    inventory = json.loads(listed.stdout)
    hostvars = inventory["_meta"]["hostvars"]
    return {
        int(hostvars[name]["pgbackrest_repo_index"]): name
        for name in inventory["backup"]["hosts"]
        if "pgbackrest_repo_index" in hostvars.get(name, {})
    }


def ids_on(dsn: str, query: str) -> set[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {int(row[0]) for row in conn.execute(query)}


def pitr_target(writer: Writer) -> tuple[float, str]:
    """Pause the writer; the middle of the pause is the target time (UTC, microseconds)."""
    writer.pause()
    time.sleep(1.0)
    moment = time.time()
    time.sleep(1.0)
    writer.resume()
    stamp = dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    return moment, stamp


def destroy(db: list[str], lost_repo_host: str | None) -> tuple[float, float]:
    """Power loss of every db host (and repo1's site) at one moment, then their disks go.
    Returns when the crash began and when every host was dead (the destruction moment)."""
    victims = db + ([lost_repo_host] if lost_repo_host else [])
    began = time.time()
    with ThreadPoolExecutor(max_workers=len(victims)) as pool:
        list(pool.map(lambda name: lab("crash", name), victims))
    dead = time.time()
    lab("down", *db)  # disks removed: the db hosts come back blank, as new machines
    return began, dead


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=int, default=2, help="repository to recover from")
    parser.add_argument("--write-s", type=float, default=90, help="seconds of writes before")
    parser.add_argument("--no-bring-up", action="store_true")
    parser.add_argument("--no-pitr", action="store_true")
    args = parser.parse_args()
    hosts = db_hosts()
    if not args.no_bring_up:
        bring_up(hosts)
    repos = repo_hosts()
    if args.repo not in repos:
        parser.error(f"no repository {args.repo}; the lab has {sorted(repos)}")
    lost_repo = next((name for index, name in sorted(repos.items()) if index != args.repo), None)
    wait_for(lambda: healthy(hosts), "cluster healthy before the drill", timeout=180)

    writer = dr_writer(conninfo(hosts))
    writer.start()
    wait_for(lambda: len(writer.acked) > 50, "writer running")
    time.sleep(args.write_s / 3)
    target_at, target = pitr_target(writer)
    time.sleep(args.write_s * 2 / 3)

    crash_began, destroyed_at = destroy(sorted(hosts), lost_repo)
    started = time.monotonic()
    lab("up", *sorted(hosts))
    provision_s = time.monotonic() - started
    recover_s = playbook(
        "recover.yml",
        "dr_drill-recover.log",
        "-e",
        f"recover_repo={args.repo}",
        "--limit",
        "localhost:db:etcd",
    )
    wait_for(lambda: bool(writer.acked_after(destroyed_at)), "writes accepted again", 300)
    rto_s = writer.acked_after(destroyed_at)[0][1] - destroyed_at
    wait_for(lambda: len(writer.acked_after(destroyed_at)) >= 50, "writes going on", 120)
    writer.stop()

    primary = leader(hosts)
    assert primary is not None, "no primary after the recovery"
    present = ids_on(single_host(hosts, primary), SELECT_IDS)
    before = [(ident, at) for ident, at in writer.acked if at <= destroyed_at]
    lost = [(ident, at) for ident, at in before if ident not in present]
    result: dict[str, Any] = {
        "repo": args.repo,
        "lost_repo_host": lost_repo,
        "rto_s": round(rto_s, 1),
        "crash_s": round(destroyed_at - crash_began, 2),
        "provision_s": round(provision_s, 1),
        "recover_playbook_s": round(recover_s, 1),
        "acked_rows_before": len(before),
        "acked_rows_lost": len(lost),
        "rpo_s": round(destroyed_at - min(at for _, at in lost), 1) if lost else 0.0,
        "newest_lost_age_s": round(destroyed_at - max(at for _, at in lost), 1) if lost else 0.0,
        "newest_kept_age_s": round(
            destroyed_at - max((at for ident, at in before if ident in present), default=0), 1
        ),
        "acked_total": len(writer.acked),
        "writer_errors": writer.errors,
        "pitr_target": target,
    }
    if not args.no_pitr:
        wait_for(lambda: healthy(hosts), "recovered cluster healthy for the PITR check", 300)
        pitr_s = playbook(
            "restore.yml",
            "dr_drill-pitr.log",
            "-e",
            f"restore_target_time='{target}'",
            "-e",
            f"restore_repo={args.repo}",
            "--limit",
            f"localhost:db:db_restore:{repos[args.repo]}",
        )
        scratch = lab("hosts", "db_restore").split()[0]
        copied = lab(
            "exec",
            scratch,
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-Atc",
            SELECT_IDS,
            "parking",
        )
        restored = {int(line) for line in copied.split()}
        expected = {ident for ident, at in writer.acked if at < target_at}
        result.update(
            {
                "pitr_ok": restored == expected,
                "pitr_rows": len(restored),
                "pitr_expected_rows": len(expected),
                "pitr_missing": len(expected - restored),
                "pitr_extra": len(restored - expected),
                "pitr_restore_s": round(pitr_s, 1),
            }
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

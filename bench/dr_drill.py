"""Disaster-recovery drill in the lab: every database host and repo1's site lost, back from repo2,
measured from an edge camera's side (events through the VIP, acknowledged by central).

    .venv/bin/python bench/dr_drill.py [--repo 2] [--write-s 90] [--rate 20] [--no-bring-up]
                                       [--no-pitr]

Boots what it needs and converges what does not answer yet: db1-3, backup1-2 and scratch1
(lab/lab up etcd db backup db_restore, playbooks/database.yml unless Patroni has a leader),
then central1-2 and lb1-2 (``support.lab_tier.bring_up``: central.yml + lb.yml unless the VIP
and both centrals are ready). A camera is registered on central (parking-central-admin) and a
writer (``support.lab_tier.Probe``, one unique event at a time, one attempt each) posts its
events to ``https://VIP/api/v1/events`` with the camera's API key, as an edge does: nginx passes
them to the active central, which commits before it answers, so a 200 is an acknowledged event;
its event id is kept with the wall-clock time the answer came back. Part way, the writer pauses
for two seconds and the middle of that pause is the point-in-time target (no request is in
flight then, so "acknowledged before it" is exact). After --write-s seconds the other
repository's host (backup1 for --repo 2) and every db host are crashed at the same moment
(kill -9 of their nspawn: power loss), the db hosts' disks are removed and they boot again blank
(new machines), and ``playbooks/recover.yml -e recover_repo=N`` (no --limit: its last play waits
for every central's /api/health/ready) rebuilds etcd and Patroni from that repository while the
writer keeps posting. The centrals are not touched: their connection pool (pre-ping, the URL
listing every db host) finds the new primary by itself; ``central_restarts`` says whether a
central process was restarted all the same (its MainPID changed).

One JSON line on stdout:
- rto_s: destruction (every crashed host dead) -> the first event central acknowledged through
  the VIP afterwards (provision_s: the blank hosts booting; recover_playbook_s: recover.yml's
  own run, which goes on after the primary answers: stanza check, full backup, centrals ready);
- acked_rows_lost: event ids acknowledged before the destruction and missing from the recovered
  primary's plate_events;
- rpo_s: destruction time minus the acknowledgement time of the oldest lost event (how much of
  the past was lost; 0 if none); newest_lost_age_s: the same for the newest lost event;
- pitr_ok: playbooks/restore.yml -e restore_target_time=T -e restore_repo=N on scratch1 (from the
  recovered repository, repo1 still down) holds, of the events the writer sent, exactly those
  acknowledged before T.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import lab_tier
from support.lab_db import REPO, db_hosts, healthy, lab, leader, wait_for
from support.lab_tier import Probe, Tier, make_camera

PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
LOGS = REPO / ".lab"
EVENTS_OF_CAMERA = "SELECT event_id FROM plate_events WHERE camera_id = %s"


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


def bring_up(hosts: dict[str, str], tier: Tier) -> None:
    """The database tier with both repositories and the scratch host, then the central tier."""
    if leader(hosts) is None:
        lab_tier.log("booting and converging the database tier (playbooks/database.yml)")
        lab("up", "etcd", "db", "backup", "db_restore")
        subprocess.run(
            [str(REPO / "lab" / "converge.sh"), "--playbook", "playbooks/database.yml"],
            cwd=REPO,
            check=True,
        )
    lab_tier.bring_up(tier)


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


def central_pids(tier: Tier) -> dict[str, str]:
    """Each central's parking-central MainPID (changes when the process is restarted)."""
    return {
        name: lab_tier.sh(name, "systemctl show -p MainPID --value parking-central").strip()
        for name in sorted(tier.centrals)
    }


def stored_events(tier: Tier, camera_id: str) -> set[uuid.UUID]:
    """The camera's event ids on the primary (central's URL: every db host, read-write)."""
    with tier.database() as db:
        return {uuid.UUID(str(row[0])) for row in db.execute(EVENTS_OF_CAMERA, (camera_id,))}


def pitr_target(writer: Probe) -> tuple[float, str]:
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


def pitr_check(
    writer: Probe, camera_id: str, repo: int, repo_host: str, target_at: float, target: str
) -> dict[str, Any]:
    """restore.yml to the target on scratch1; its events of the camera against the acked."""
    pitr_s = playbook(
        "restore.yml",
        "dr_drill-pitr.log",
        "-e",
        f"restore_target_time='{target}'",
        "-e",
        f"restore_repo={repo}",
        "--limit",
        f"localhost:db:db_restore:{repo_host}",
    )
    scratch = lab("hosts", "db_restore").split()[0]
    query = EVENTS_OF_CAMERA.replace("%s", f"'{camera_id}'")  # an id this script made: [a-z0-9-]
    copied = lab(
        "exec", scratch, "runuser", "-u", "postgres", "--", "psql", "-Atc", query, "parking"
    )
    restored = {uuid.UUID(line) for line in copied.split()}
    expected = {event_id for event_id, at in writer.acked_at.items() if at < target_at}
    return {
        "pitr_ok": restored == expected,
        "pitr_rows": len(restored),
        "pitr_expected_rows": len(expected),
        "pitr_missing": len(expected - restored),
        "pitr_extra": len(restored - expected),
        "pitr_restore_s": round(pitr_s, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=int, default=2, help="repository to recover from")
    parser.add_argument("--write-s", type=float, default=90, help="seconds of writes before")
    parser.add_argument("--rate", type=float, default=20, help="writer's events per second (max)")
    parser.add_argument("--no-bring-up", action="store_true")
    parser.add_argument("--no-pitr", action="store_true")
    args = parser.parse_args()
    drill_started = time.monotonic()
    hosts = db_hosts()
    tier = Tier.from_inventory()
    if not args.no_bring_up:
        bring_up(hosts, tier)
    repos = repo_hosts()
    if args.repo not in repos:
        parser.error(f"no repository {args.repo}; the lab has {sorted(repos)}")
    lost_repo = next((name for index, name in sorted(repos.items()) if index != args.repo), None)
    wait_for(lambda: healthy(hosts), "cluster healthy before the drill", timeout=180)
    wait_for(tier.vip_ready, "the VIP answers before the drill", timeout=60)

    run = secrets.token_hex(3)
    camera = make_camera(tier, f"dr-{run}", f"dr-drill-{run}", "entry")
    writer = Probe(tier, camera, args.rate)
    writer.start()
    wait_for(lambda: len(writer.acked_at) > 20, "writer's events acknowledged", 60)
    time.sleep(args.write_s / 3)
    target_at, target = pitr_target(writer)
    time.sleep(args.write_s * 2 / 3)
    pids_before = central_pids(tier)

    lab_tier.log(f"destroying {sorted(hosts)} and {lost_repo}")
    crash_began, destroyed_at = destroy(sorted(hosts), lost_repo)
    started = time.monotonic()
    lab("up", *sorted(hosts))
    provision_s = time.monotonic() - started
    lab_tier.log(f"playbooks/recover.yml -e recover_repo={args.repo}")
    recover_s = playbook("recover.yml", "dr_drill-recover.log", "-e", f"recover_repo={args.repo}")
    wait_for(lambda: bool(writer.acked_after(destroyed_at)), "central acknowledges again", 300)
    rto_s = writer.acked_after(destroyed_at)[0][1] - destroyed_at
    wait_for(lambda: len(writer.acked_after(destroyed_at)) >= 20, "events going on", 120)
    writer.stop_event.set()
    writer.join(timeout=30)
    pids_after = central_pids(tier)

    present = stored_events(tier, camera[0])
    before = [(event_id, at) for event_id, at in writer.acked_at.items() if at <= destroyed_at]
    lost = [(event_id, at) for event_id, at in before if event_id not in present]
    after = writer.acked_after(destroyed_at)
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
            destroyed_at - max((at for e, at in before if e in present), default=0), 1
        ),
        "acked_after_lost": sum(1 for event_id, _ in after if event_id not in present),
        "acked_total": len(writer.acked_at),
        "sent_total": len(writer.sent),
        "writer_failed": len(writer.failures),
        "writer_retried": writer.retried,
        "writer_failures_sample": sorted(set(writer.failures))[:3],
        "central_restarts": sum(pids_before[n] != pids_after[n] for n in pids_before),
        "pitr_target": target,
    }
    if not args.no_pitr:
        wait_for(lambda: healthy(hosts), "recovered cluster healthy for the PITR check", 300)
        result.update(pitr_check(writer, camera[0], args.repo, repos[args.repo], target_at, target))
    result["drill_s"] = round(time.monotonic() - drill_started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak of the whole lab: traffic from every lane while a seeded nemesis injects faults.

    .venv/bin/python bench/soak.py --minutes N [--seed S] [--rate 5] [--probe-rate 2]
                                   [--gap 15 45] [--only KIND,...] [--converge-timeout 600]
                                   [--spare central1,edge1]

Needs the lab up and converged with playbooks/site.yml (central, lb, db, edge and monitoring
hosts running); it boots and converges nothing. docs/soak.md says what runs and why.

Traffic, for ``--minutes``: the edge agents on the edge hosts replay their pictures (their own
outboxes and uploaders); ``parking-edge simulate`` on this machine drives an entry and an exit
camera through the VIP (events and heartbeats); a probe posts one unique event at a time; an
operator's live feed (WebSocket) stays open. All of it is ``support/lab_tier``'s and
``support/lab_edge``'s code, as ``bench/failover_central.py`` uses it.

The nemesis: a schedule drawn from ``random.Random(seed)`` (printed at the start; the same seed
and inventory give the same schedule) of faults, each with its target and hold time. Each fault
belongs to a tier (central, lb, db, edge) and a tier takes at most one fault at a time: a fault
starts at its planned second or once the tier's previous fault has healed and its component is
back, whichever is later; faults planned after the traffic window are skipped. Faults of
different tiers overlap. Kinds (``support/lab_soak.KINDS``): kill -9 of central, the edge
agent, Patroni, an etcd member, nginx, keepalived (systemd restarts it, or the soak starts it
after the hold); a host crash and power-on (central, lb, db or edge host); an edge host's cable
cut (``lab/lab cut``); one central's PostgreSQL connections reset (nft, the drills'
``reset_outgoing``); an edge's
disk full (its state directory on a small disk of its own, filled, then freed); a slow database
(``pg_sleep`` in a trigger on ``plate_events``, dropped after).

Invariants, from the systems' own records: every event an edge captured (its outbox's ids, the
simulator's outbox ids, the probe's acknowledged ids) stored exactly once in PostgreSQL; no
session open twice for one plate in one lot (checked every sample and at the end); every fault's
component back within its timeout; after the last fault healed, ``converged_s``: every host up,
edge outboxes drained, one Patroni leader with every replica streaming, both centrals ready, one
VIP holder whose nginx and keepalived are healthy and the VIP answering, and no alert firing in
Alertmanager that was not firing before the soak (alerts about cameras it does not drive
aside). RSS and open file descriptors of central (both hosts) and the edge agent (both hosts),
each main process with its children, are sampled every ``--sample-s``; growth per hour is
the least-squares slope within each process lifetime (a restart starts a new segment), the worst
host reported, and each host's own figures under ``per_host``. ``--spare`` keeps chosen
processes alive the whole run (no kill -9, no crash of their host) so their growth is measured
over hours; spare single hosts (``central1,edge1``) to keep the kills on their tier's others.

The last line is one JSON object (``support/lab_soak.soak_run``'s result; docs/soak.md lists
its keys).
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.lab_soak import Options, soak_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="traffic and faults window")
    parser.add_argument("--seed", type=int, default=None, help="the nemesis' seed (default: new)")
    parser.add_argument("--rate", type=float, default=5.0, help="simulated events per second")
    parser.add_argument("--probe-rate", type=float, default=2.0, help="probe events per second")
    parser.add_argument(
        "--gap", type=float, nargs=2, default=(15.0, 45.0), metavar=("MIN", "MAX"),
        help="seconds between planned fault starts",
    )  # fmt: skip
    parser.add_argument("--only", default="", help="comma-separated fault kinds (default: all)")
    parser.add_argument(
        "--opens-per-s", type=float, default=0.5, help="a guard's manual opens per second (0: none)"
    )
    parser.add_argument(
        "--spare",
        default="",
        help=(
            "tiers (central, edge) or hosts (central1,edge1) whose service process no fault"
            " restarts: their RSS is measured over hours; a host spared alone still takes its"
            " other faults and its tier's other hosts the kills"
        ),
    )
    parser.add_argument("--sample-s", type=float, default=60.0, help="resource sample period")
    parser.add_argument("--converge-timeout", type=float, default=600.0)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)

    options = Options(
        minutes=args.minutes,
        seed=seed,
        rate=args.rate,
        probe_rate=args.probe_rate,
        gap=(args.gap[0], args.gap[1]),
        only=args.only,
        sample_s=args.sample_s,
        converge_timeout=args.converge_timeout,
        opens_per_s=args.opens_per_s,
        spare=args.spare,
    )

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    with tempfile.TemporaryDirectory(prefix="parking-soak-") as tmp:
        result = soak_run(options, Path(tmp))
    for fault in result["faults"]:
        print(f"  {json.dumps(fault)}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

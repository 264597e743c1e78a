"""Offline gate decisions in the lab: an edge host's cable is cut while it replays pictures.

    .venv/bin/python bench/edge_offline.py [--host edge1] [--cut-s 120]

Needs the lab up and converged with playbooks/site.yml (edge hosts replay the shared plate
pictures through https://10.77.0.30). Puts three of the replayed plates on central's lists
(deny, allow, pass) for the edge's lot and waits until the edge has synced them; cuts the
host's cable (`lab/lab cut`) for ``--cut-s`` seconds while the agent keeps capturing; the gate
decides alone from its local copy; then restores the cable and waits until the outbox and the
offline-decision journal are empty. Compares the event ids the edge captured in the window
with those central stored, checks central's reconciliation for the camera (captured ==
received as of the last heartbeat) and takes the list entries away again.
The last line is one JSON object: captured, delivered, duplicates, offline_decisions, ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.lab_edge import EdgeHost, network_cut


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="edge1", help="the edge host to cut")
    parser.add_argument("--central", help="central host to query (default: a running one)")
    parser.add_argument("--cut-s", type=float, default=120.0)
    args = parser.parse_args()
    edge = EdgeHost(args.host, central=args.central)
    figures = network_cut(edge, args.cut_s, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

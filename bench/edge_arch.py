"""The edge reader on the Raspberry Pi's architecture: an arm64 lab host's reads of the lane's
replayed pictures against this machine's (x86-64) reads of the same files.

    .venv/bin/python bench/edge_arch.py [--host edgearm1] [--images 6]

Needs the arm64 edge host up and converged (`make test-lab-arm64`, or `LAB_HOSTS=edgearm1
make lab-up` and `lab/converge.sh --limit 'etcd:db:backup:central:lb:edge_arm64'`; docs/lab.md).
On the host, the agent's own Python reads the first ``--images`` pictures it replays, with the
reader its ``edge.toml`` describes (``open_reader``, as the agent builds it); here the same
files (copied back) go through the same reader built from that ``[reader]`` with this checkout.
Times are the reader's alone (the JPEG is decoded before the clock starts; the first, warm-up
read is left out of the means). Under QEMU user-mode emulation the arm64 times are the
emulator's: ``emulation_factor`` is the host's CPU ms per image over this machine's, a property
of the lab, not of a Pi. The last line is one JSON object: arch, images, same_reads (pictures
whose best plate equals the x86-64 one), ms_per_image (the host, wall clock),
reference_ms_per_image (x86-64), emulation_factor, differences (picture -> both plates).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.edge_arch import compare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="edgearm1", help="the (arm64) edge host")
    parser.add_argument("--images", type=int, default=6, help="replayed pictures to read")
    args = parser.parse_args()
    print(json.dumps(compare(args.host, args.images)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

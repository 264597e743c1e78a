"""The same pictures read by an edge host's TFLite reader and by this machine's (x86-64).

The host side runs with the agent's Python (the installed release), as the agent's user, with
the host's own ``edge.toml`` (``open_reader`` as the agent builds it, ``kind`` set to ``litert``
where the lane replays the ground truth) over the pictures the lane replays; this side builds
the same reader from that host's ``[reader]`` settings with this checkout over the same files,
copied back from the host. Shared by ``bench/edge_arch.py`` (which prints the
figures) and ``tests/lab/test_edge_arm64.py`` (which asserts them).
"""

from __future__ import annotations

import base64
import json
import platform
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support.lab_edge import EDGE_BIN, EDGE_CONFIG, EDGE_IMAGES, sh

# QEMU's CPU for the reads on an emulated host: a Raspberry Pi 4's (its default, "max", has
# extensions no Pi has). Only QEMU reads it: nothing changes on a real arm64 host.
QEMU_CPU = "cortex-a72"

# Run on the host (sees ARGS: {"config", "dir", "limit"}). The JPEG is decoded before the
# clock starts, as bench/plates.py times the reader alone; the first read (model warm-up) is
# timed apart.
READ_PROGRAM = """
import platform, time
from pathlib import Path
import cv2
from app.edge.agent import open_reader
from app.edge.config import load_config
from app.edge.sources import Frame
from datetime import UTC, datetime
config = load_config(Path(ARGS["config"]))
# The TFLite reader with the lane's settings, also where the lane replays the ground truth.
config = config.model_copy(update={"reader": config.reader.model_copy(update={"kind": "litert"})})
reader = open_reader(config)
reads = {}
for n, path in enumerate(sorted(Path(ARGS["dir"]).glob("*.jpg"))[: ARGS["limit"]]):
    image = cv2.imread(str(path))
    started, cpu = time.perf_counter(), time.process_time()
    found = reader.read(Frame(image, datetime.now(UTC), time.monotonic(), n, path))
    ms = (time.perf_counter() - started) * 1000
    cpu_ms = (time.process_time() - cpu) * 1000
    best = max(found, key=lambda r: r.confidence, default=None)
    reads[path.name] = [best.plate or best.text if best else "", round(ms, 1), round(cpu_ms, 1)]
print(json.dumps({"arch": platform.machine(), "reader": config.reader.model_dump(mode="json"),
                  "reads": reads}))
"""


@dataclass(frozen=True)
class ArchReads:
    """One machine's reads: picture name -> (plate, wall ms, CPU ms); empty plate: none found."""

    arch: str
    reads: dict[str, tuple[str, float, float]]

    def ms_per_image(self, cpu: bool = False) -> float:
        """Mean reader time per picture (wall clock, or the process's CPU time), the first
        (warm-up) one left out when there are more."""
        times = [cpu_ms if cpu else ms for _, ms, cpu_ms in self.reads.values()]
        times = times[1:] if len(times) > 1 else times
        return round(sum(times) / len(times), 1) if times else 0.0


def read_on_host(host: str, limit: int) -> tuple[ArchReads, dict[str, Any]]:
    """The host's reads of its first ``limit`` replayed pictures, and its ``[reader]``."""
    args = {"config": EDGE_CONFIG, "dir": EDGE_IMAGES, "limit": limit}
    program = f"import json\nARGS = json.loads({json.dumps(json.dumps(args))})\n{READ_PROGRAM}"
    encoded = base64.b64encode(program.encode()).decode()
    # Minutes per picture under emulation: no short timeout here.
    text = sh(
        host,
        f"export QEMU_CPU={QEMU_CPU}; echo {encoded} | base64 -d"
        f" | runuser -u parking-edge -- {EDGE_BIN}/python -",
        timeout=600 + 300 * limit,
    )
    out = json.loads(text.strip().splitlines()[-1])
    reads = {
        name: (plate, float(ms), float(cpu)) for name, (plate, ms, cpu) in out["reads"].items()
    }
    return ArchReads(out["arch"], reads), out["reader"]


def fetch_pictures(host: str, names: list[str], into: Path) -> None:
    """Copy the named replayed pictures from the host (what it read, byte for byte)."""
    for name in names:
        data = sh(host, f"base64 -w0 {EDGE_IMAGES}/{name}", timeout=60)
        (into / name).write_bytes(base64.b64decode(data))


def read_here(folder: Path, reader_settings: dict[str, Any]) -> ArchReads:
    """This machine's reads of the pictures in ``folder`` with the host's reader settings."""
    import cv2

    from app.edge.agent import open_reader
    from app.edge.config import parse_config
    from app.edge.sources import Frame

    config = parse_config(
        {
            "camera": {"id": "arch-compare", "direction": "entry", "api_key": "k"},
            "central": {"url": "http://127.0.0.1:9"},
            "source": {"kind": "folder", "path": str(folder)},
            "reader": {k: v for k, v in reader_settings.items() if v is not None},
        }
    )
    reader = open_reader(config)
    reads: dict[str, tuple[str, float, float]] = {}
    for n, path in enumerate(sorted(folder.glob("*.jpg"))):
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"{path}: not a picture OpenCV decodes")
        started, cpu = time.perf_counter(), time.process_time()
        found = reader.read(Frame(image, datetime.now(UTC), time.monotonic(), n, path))
        ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.process_time() - cpu) * 1000
        best = max(found, key=lambda r: r.confidence, default=None)
        reads[path.name] = (
            (best.plate or best.text) if best else "",
            round(ms, 1),
            round(cpu_ms, 1),
        )
    return ArchReads(platform.machine(), reads)


def compare(host: str, limit: int) -> dict[str, Any]:
    """Both sides' reads of the host's first ``limit`` replayed pictures, and the figures."""
    there, settings = read_on_host(host, limit)
    with tempfile.TemporaryDirectory(prefix="edge-arch-") as tmp:
        folder = Path(tmp)
        fetch_pictures(host, sorted(there.reads), folder)
        here = read_here(folder, settings)
    same = [n for n in there.reads if n in here.reads and there.reads[n][0] == here.reads[n][0]]
    # CPU time per read, not wall time: immune to what else the shared cores are doing.
    cpu_here = here.ms_per_image(cpu=True)
    factor = there.ms_per_image(cpu=True) / cpu_here if cpu_here else 0.0
    return {
        "host": host,
        "arch": there.arch,
        "reference_arch": here.arch,
        "images": len(there.reads),
        "same_reads": len(same),
        "plates_found": sum(1 for read in there.reads.values() if read[0]),
        "ms_per_image": there.ms_per_image(),
        "cpu_ms_per_image": there.ms_per_image(cpu=True),
        "reference_ms_per_image": here.ms_per_image(),
        "reference_cpu_ms_per_image": cpu_here,
        "emulation_factor": round(factor, 1),
        "detector": settings.get("detector"),
        "regions": settings.get("regions"),
        "threads": settings.get("threads"),
        "reference_reads": {n: read[0] for n, read in sorted(here.reads.items())},
        "differences": {
            n: {
                "host": there.reads[n][0],
                "reference": here.reads[n][0] if n in here.reads else None,
            }
            for n in sorted(set(there.reads) - set(same))
        },
    }

"""CPU time of several TFLite reader builds side by side, in one process, alternating per image.

    .venv/bin/python bench/reader_ab.py ../shared/data/plates/openalpr-us --region us \\
        old=/tmp/models-old new=app/edge/models fine=app/edge/models:fine

Each ``NAME=MODELS_DIR[:DETECTOR]`` is a ``LiteRTPlateReader`` over that models folder (and
``[reader] detector``). Every image is read by each of them in turn (the order reversed on every
other image), so that all of them see the machine as it is at that moment: on a shared machine
whose speed moves by 2x from hour to hour this gives steadier ratios than separate runs.
``ratio`` is each one's mean CPU time per image over the first one's; exact match as in
``bench/plates.py``. Peak memory cannot be told apart in one process: measure it with
``bench/plates.py --models``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import cast, get_args

import cv2
import numpy as np

from app.contract import normalize_plate
from app.edge.reader import Detector
from app.edge.reader.litert import LiteRTPlateReader
from app.edge.reader.profiles import region_names
from support.plate_data import load_samples


def parse_reader(spec: str) -> tuple[str, Path, Detector]:
    name, sep, rest = spec.partition("=")
    folder, _, detector = rest.partition(":")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"{spec!r}: NAME=MODELS_DIR[:DETECTOR]")
    if detector and detector not in get_args(Detector):
        raise argparse.ArgumentTypeError(f"{spec!r}: detector one of {get_args(Detector)}")
    return name, Path(folder), cast(Detector, detector or "fast")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="reader builds' CPU time side by side")
    parser.add_argument("folder", type=Path)
    parser.add_argument("readers", nargs="+", type=parse_reader, metavar="NAME=DIR[:DETECTOR]")
    parser.add_argument("--region", default="generic", help="region profile(s), comma-separated")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    regions = args.region.split(",")
    if unknown := [r for r in regions if r not in region_names()]:
        parser.error(f"--region: unknown {unknown[0]!r}")
    names = [name for name, _, _ in args.readers]
    if len(set(names)) != len(names):
        parser.error("reader names must differ")
    readers = [
        (name, LiteRTPlateReader(models_dir=folder, regions=regions, detector=detector))
        for name, folder, detector in args.readers
    ]
    samples, _ = load_samples(args.folder)
    samples = samples[: args.limit] if args.limit else samples
    if not samples:
        parser.error(f"no labelled images in {args.folder}")
    first = cv2.imread(str(samples[0].image))
    for _, reader in readers:  # the first call prepares XNNPACK: not timed
        if first is not None:
            reader.read_image(first)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    exact = dict.fromkeys(names, 0)
    for i, sample in enumerate(samples):
        image = cv2.imread(str(sample.image))
        if image is None:
            continue
        want = normalize_plate(sample.label)
        for name, reader in readers if i % 2 == 0 else readers[::-1]:
            started = time.process_time()
            results = reader.read_image(image)
            cpu[name].append((time.process_time() - started) * 1000)
            exact[name] += (results[0].plate if results else "") == want
    n = len(cpu[names[0]])
    base = float(np.mean(cpu[names[0]]))
    summary: dict[str, object] = {"dir": str(args.folder), "region": args.region, "n": n}
    for name in names:
        mean = float(np.mean(cpu[name]))
        summary[name] = {
            "cpu_mean_ms": round(mean, 1),
            "ratio": round(mean / base, 3),
            "exact_pct": round(100 * exact[name] / n, 2),
        }
        pct = round(100 * exact[name] / n, 2)
        print(f"{name}: {mean:.1f} CPU ms per image ({mean / base:.3f}x), exact {pct} %")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Plate-reading accuracy and speed of the real edge reader on a folder of labelled images.

    .venv/bin/python bench/plates.py ../shared/data/plates/openalpr-us
    .venv/bin/python bench/plates.py ../shared/data/plates/vn-gold --predictions /tmp/vn.tsv

Folders in either format of shared/data/plates/README.md: ``NAME.jpg`` + ``NAME.txt``
(``NAME.jpg<TAB>x<TAB>y<TAB>w<TAB>h<TAB>PLATE``), or ``labels.tsv``
(``image<TAB>n_lines<TAB>text_by_line``, lines joined by `` / ``) with the images in ``images/``.

Every image goes through ``LiteRTPlateReader.read_image`` (1 thread by default); its best plate
is the prediction (``--predictions FILE``: one TSV row per image, no header: image, normalized
plate, display form, confidence, ms; empty plate when none was found). Exact: the normalized
plate (letters and digits, top line first) equals the label normalized the same way; within
one: at most one edit away; same match key: equal up to look-alikes (O/0, I/1, B/8, ...), as
central matches plates (``app.contract.plate_match_key``). For Vietnamese labels the display
form (dash, dot, line split) is scored too. Times are the reader's alone (the JPEG is decoded
before the clock starts). The last line printed is one JSON object.

The region profile is the lane's (``--region vn``, ``us``, ``br``, ``eu`` or ``generic``; a
comma-separated list for several in order of preference). Without ``--region`` it is
``generic``: letters and digits as read, no layout fitted to the data set. The JSON line holds
``region``.

``--plate-models DIR`` reads with the optional plate-specific models installed in ``DIR``
(``parking-edge models install``; ``app/edge/reader/plate_models.py``) instead of the TFLite
reader alone; the JSON line then holds ``plate_models``.

``by_half`` in the JSON line: exact match on each half of the set, split by a hash of the file
name (``image_half``), so that a change tuned on half 0 is checked on half 1 (``--half N`` reads
one half only). ``--narrow`` reads small print with the narrow 48x160 recognizer, as the TFLite
reader did before 2026-12-06.

``ref_line_ms`` in the JSON line: the median CPU time of one read of a fixed line by the
reader's own 48x320 recognizer, timed after every image (apart from the image's time), so that
it sees the machine as the images did; ``cpu_line_reads`` is ``cpu_mean_ms`` in those units.
This development machine's speed moves from day to day (2x between 2026-11-27 and 2026-12-06)
and from minute to minute with its neighbours; the budget of 100 ms per scene on the machine of
2026-11-27 (12.0 ms per line read) is ``cpu_line_reads <= 8.3`` on any machine.

``--render eu|br|... --count N`` draws N synthetic plates of that profile's countries into a
temporary folder first (``support/render_plates.py``) and measures on them.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import get_args

import cv2
import numpy as np

from app.contract import normalize_plate, plate_match_key
from app.edge.aggregate import edit_distance
from app.edge.reader import Detector
from app.edge.reader.grammar import PlateGrammar
from app.edge.reader.litert import MODELS_DIR, LiteRTPlateReader
from app.edge.reader.plate_models import PlateModelsReader
from app.edge.reader.profiles import region_names
from support.plate_data import image_half, load_samples


def load_countries(folder: Path) -> dict[str, str]:
    """``countries.tsv`` (image, band code) when the folder has one (rendered plates)."""
    path = folder / "countries.tsv"
    if not path.is_file():
        return {}
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    return {r[0]: r[1] for r in rows if len(r) == 2}


def label_display(label: str) -> str:
    """The reader's display form of a label: line split written as one space."""
    return " ".join(part.strip() for part in label.split("/"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plate reading accuracy and speed")
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--predictions", type=Path, help="write one TSV row per image here")
    parser.add_argument(
        "--region",
        default="generic",
        help=f"region profile(s), comma-separated, of {', '.join(region_names())} "
        "(default generic: no layout)",
    )
    parser.add_argument(
        "--render",
        metavar="REGION",
        help="draw synthetic plates of this profile into a temporary folder and read those "
        "(the folder argument is then ignored)",
    )
    parser.add_argument("--count", type=int, default=200, help="plates to draw with --render")
    parser.add_argument("--seed", type=int, default=17, help="seed for --render")
    parser.add_argument("--detector", choices=get_args(Detector), default="fast")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int)
    parser.add_argument(
        "--half",
        type=int,
        choices=(0, 1),
        help="only the images of this half (image_half: a hash of the file name)",
    )
    parser.add_argument("--models", type=Path, default=MODELS_DIR)
    parser.add_argument("--errors", action="store_true", help="list every miss on stderr")
    # -- plate-specific models (optional) --
    parser.add_argument(
        "--plate-models",
        type=Path,
        metavar="DIR",
        help="read with the plate-specific models installed in DIR (plate_models.py)",
    )
    parser.add_argument(
        "--narrow",
        action="store_true",
        help="TFLite reader: read small print with the narrow 48x160 recognizer, as before "
        "2026-12-06 (the plate-models reader always does)",
    )
    # the zoomed second look over a grid of tiles ([reader] zoom_tiles; 0 = off)
    parser.add_argument("--zoom-tiles", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)

    regions = args.region.split(",")
    unknown = [r for r in regions if r not in region_names()]
    if unknown:
        parser.error(f"--region: unknown {unknown[0]!r}, one of {', '.join(region_names())}")
    if args.render:
        import tempfile

        from support.render_plates import render_folder

        args.folder = Path(tempfile.mkdtemp(prefix=f"plates-{args.render}-"))
        countries = render_folder(args.folder, args.render, args.count, seed=args.seed)
        print(f"rendered {args.count} {args.render} plates ({countries}) in {args.folder}")
    if args.folder is None:
        parser.error("a folder (or --render REGION)")
    samples, fmt = load_samples(args.folder)
    if args.limit:
        samples = samples[: args.limit]
    if args.half is not None:
        samples = [s for s in samples if image_half(s.image.name) == args.half]
    if not samples:
        parser.error(f"no labelled images in {args.folder}")
    reader: LiteRTPlateReader | PlateModelsReader
    if args.plate_models is not None:
        reader = PlateModelsReader(
            plate_models=args.plate_models,
            beside=LiteRTPlateReader(
                models_dir=args.models,
                threads=args.threads,
                regions=regions,
                detector=args.detector,
                narrow=True,  # the plate-models reader reads its plates' rows with it
            ),
            threads=args.threads,
            detector=args.detector,
        )
    else:
        reader = LiteRTPlateReader(
            models_dir=args.models,
            threads=args.threads,
            regions=regions,
            detector=args.detector,
            zoom_tiles=args.zoom_tiles,
            narrow=args.narrow,
        )
    vn_only = PlateGrammar(("vn",), accept_cost=0.0, max_cost=0.0)

    # the speed reference: one read of a fixed line by the reader's own recognizer
    line_model = (
        reader.fallback if isinstance(reader, PlateModelsReader) else reader
    ).pipeline.recognizer.model
    line = np.random.default_rng(0).random(line_model.input_shape).astype(np.float32)
    line_times: list[float] = []
    first = cv2.imread(str(samples[0].image))
    if first is not None:
        reader.read_image(first)  # warm-up: the first call prepares XNNPACK (~0.1 s), not timed
    del first  # the peak RSS is the reader's: no frame is kept beyond its read
    rows: list[str] = []
    times: list[float] = []
    cpu_times: list[float] = []  # CPU time of this process: less sensitive to a busy machine
    exact = exact_key = within1 = display_total = display_exact = vn_exact = 0
    country_total = country_exact = 0
    want_country = load_countries(args.folder)
    # exact match by the label's category and by its number of lines (one/two), when given
    groups: dict[str, dict[str, list[int]]] = {"by_category": {}, "by_lines": {}, "by_half": {}}
    for sample in samples:
        image = cv2.imread(str(sample.image))
        if image is None:
            print(f"cannot read {sample.image}", file=sys.stderr)
            continue
        started, cpu_started = time.perf_counter(), time.process_time()
        results = reader.read_image(image)
        ms = (time.perf_counter() - started) * 1000
        times.append(ms)
        cpu_times.append((time.process_time() - cpu_started) * 1000)
        best = results[0] if results else None
        plate = best.plate if best else ""
        display = best.display if best else ""
        confidence = best.confidence if best else 0.0
        want = normalize_plate(sample.label)
        exact += plate == want
        for key, value in (
            ("by_category", sample.category),
            ("by_lines", sample.lines),
            ("by_half", str(image_half(sample.image.name))),
        ):
            if value:
                tally = groups[key].setdefault(str(value), [0, 0])
                tally[0] += plate == want
                tally[1] += 1
        if sample.image.name in want_country:
            country_total += 1
            country_exact += (best.country if best else "") == want_country[sample.image.name]
        # as central matches plates: look-alikes (O/0, I/1, ...) are one character (the US
        # labels write the one O/0 glyph as 0 whatever the plate's letter)
        exact_key += plate_match_key(plate) == plate_match_key(want)
        within1 += edit_distance(plate, want) <= 1
        if fmt == "tsv" and vn_only.parse(sample.label) is not None:
            display_total += 1
            display_exact += display == label_display(sample.label)
            vn_exact += plate == want
        if args.errors and plate != want:
            raw = best.raw if best else ""
            print(
                f"miss {sample.image.name}: want {sample.label} got {display} [{raw}]",
                file=sys.stderr,
            )
        rows.append(f"{sample.image.name}\t{plate}\t{display}\t{confidence:.4f}\t{ms:.1f}")
        del image, results  # freed before the next frame is decoded, as the agent's frames are
        cpu_started = time.process_time()
        line_model(line)
        line_times.append((time.process_time() - cpu_started) * 1000)

    if args.predictions:  # image, plate, display, confidence, ms; no header
        args.predictions.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    n = len(times)
    summary: dict[str, object] = {
        "dir": str(args.folder),
        "region": ",".join(regions),
        "detector": args.detector,
        "threads": args.threads,
        "n": n,
        "exact_pct": round(100 * exact / n, 2),
        "within1_pct": round(100 * within1 / n, 2),
        "match_key_pct": round(100 * exact_key / n, 2),
        "mean_ms": round(float(np.mean(times)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
        "cpu_mean_ms": round(float(np.mean(cpu_times)), 1),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ref_line_ms": round(float(np.median(line_times)), 2),
        "cpu_line_reads": round(float(np.mean(cpu_times) / np.median(line_times)), 2),
    }
    if args.plate_models is not None:
        summary["plate_models"] = str(args.plate_models)
    for key, tallies in groups.items():
        if tallies:  # {"car": {"n": 300, "exact_pct": 61.0}, ...}
            summary[key] = {
                k: {"n": t[1], "exact_pct": round(100 * t[0] / t[1], 2)}
                for k, t in sorted(tallies.items())
            }
    if args.zoom_tiles:
        summary["zoom_tiles"] = args.zoom_tiles
    if country_total:
        summary["country_n"] = country_total
        summary["country_exact_pct"] = round(100 * country_exact / country_total, 2)
    if display_total:
        summary["vn_display_n"] = display_total
        summary["vn_display_exact_pct"] = round(100 * display_exact / display_total, 2)
        # exact on the Vietnamese plates alone (vn-gold also holds Czech and other plates)
        summary["vn_exact_pct"] = round(100 * vn_exact / display_total, 2)
    print(
        f"{n} images: exact {summary['exact_pct']} %, within one {summary['within1_pct']} %, "
        f"same match key {summary['match_key_pct']} %, "
        f"mean {summary['mean_ms']} ms, p95 {summary['p95_ms']} ms, RSS {summary['rss_mb']} MB"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

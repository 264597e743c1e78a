"""Boxes of plate text lines in labelled photos, from reads that match the label.

Labelled photos of a site (the plate text of each, e.g. the reads operators confirmed or
corrected) carry no boxes; a detector is trained on boxes. This finds them: every text line the
reader's detectors see (the 448x800 and 544x960 full-frame ones, and the latter over a 2 x 2
grid of upscaled tiles for small print) is read, and a line whose read is within one edit of a
line of the label (letters and digits only, top line first) is that line's box; a two-line
plate's short top line that no detector saw is looked for in the strip right above its bottom
line, as the reader does. A photo is ``complete`` when every line of its label has a box: only
those may train a detector (in the others an unfound plate would be taught as background).

    .venv/bin/python tools/models/plate_boxes.py ../shared/data/plates/vn-scenes-dev \\
        --half 0 --out /tmp/boxes-vn.json

Runs in the app's venv (the reader's own models). The output is a JSON object: ``folder``,
``images`` (one entry per photo: ``image``, ``label``, ``complete``, ``lines``: a list of
quads, 4 x [x, y] in photo pixels, as the detector's boxes are after their "unclip") and the
counts. It is derived from the photos: keep it beside them, never in this repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from app.contract import normalize_plate  # noqa: E402
from app.edge.aggregate import edit_distance  # noqa: E402
from app.edge.reader.litert import MODELS_DIR, LiteRTModel, load_classes  # noqa: E402
from app.edge.reader.ocr import (  # noqa: E402
    FloatArray,
    TextBox,
    TextDetector,
    TextRecognizer,
    crop_quad,
    scale_quad,
)
from app.edge.reader.pipeline import detect_in, overlap, tile_grid  # noqa: E402
from app.edge.reader.plate_models import OnnxModel  # noqa: E402
from support.plate_data import image_half, load_samples  # noqa: E402


def label_lines(label: str) -> list[str]:
    return [n for part in label.split("/") if (n := normalize_plate(part))]


class OnnxDetector:
    """A detector ONNX (finetune_det.py's output) as the reader's NHWC ``Model``, at a fixed
    size (the ONNX graph's own input is NCHW and of any size)."""

    def __init__(self, path: Path, shape: tuple[int, int, int, int]) -> None:
        self._model = OnnxModel(path)
        self._shape = shape

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return self._shape

    def __call__(self, x: FloatArray) -> FloatArray:
        out = self._model(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return np.asarray(out, np.float32).transpose(0, 2, 3, 1)


class Boxer:
    def __init__(self, models_dir: Path, detector_onnx: Path | None = None) -> None:
        self.detectors = [
            TextDetector(LiteRTModel(models_dir / name))
            for name in ("plate_det.tflite", "plate_det_fine.tflite")
        ]
        if detector_onnx is not None:  # an earlier round's tuned detector looks too, at their sizes
            self.detectors += [
                TextDetector(OnnxDetector(detector_onnx, d.model.input_shape))
                for d in list(self.detectors)
            ]
        self.recognizer = TextRecognizer(
            LiteRTModel(models_dir / "plate_rec.tflite"), load_classes(models_dir)
        )

    def boxes(self, image: np.ndarray) -> list[TextBox]:
        found: list[TextBox] = []
        for det in self.detectors:
            found += det.detect(image)
        fine = self.detectors[-1]  # the tuned one when given
        # 2 x 2 tiles, each 5/8 of the frame a side (overlap 0.4 of a tile), upscaled to its input
        for x0, y0, x1, y1 in tile_grid(image.shape, 2, 0.4):
            found += detect_in(fine, image[y0:y1, x0:x1], x0, y0)
        found.sort(key=lambda b: b.score * b.width * b.height, reverse=True)
        kept: list[TextBox] = []
        for box in found:
            if (
                box.height >= 6
                and box.width >= 1.2 * box.height
                and all(overlap(box, k) < 0.6 for k in kept)
            ):
                kept.append(box)
        return kept[:30]

    def read(self, image: np.ndarray, quad: np.ndarray) -> list[str]:
        """The line as read from its box, and from the box a little wider and less tall."""
        out = []
        for q in (quad, scale_quad(quad, 1.1, 0.85)):
            out.append(normalize_plate(self.recognizer.read(crop_quad(image, q)).text))
        return out

    def label(self, image: np.ndarray, lines: list[str]) -> list[np.ndarray | None]:
        quads: list[np.ndarray | None] = [None] * len(lines)
        best = [2] * len(lines)
        for box in self.boxes(image):
            reads = self.read(image, box.quad)
            for k, line in enumerate(lines):
                d = min(edit_distance(r, line) for r in reads)
                if d < best[k] and len(line) >= 2 and (d == 0 or len(line) >= 4):
                    best[k], quads[k] = d, box.quad
        if len(lines) == 2 and quads[0] is None and quads[1] is not None:
            q = quads[1]
            top = (q + (q[0] - q[3]) * 1.05).astype(np.float32)
            if top.min() >= 0:
                reads = self.read(image, top)
                if min(edit_distance(r, lines[0]) for r in reads) <= (
                    1 if len(lines[0]) >= 4 else 0
                ):
                    quads[0] = top
        return quads


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--half", type=int, choices=(0, 1))
    parser.add_argument("--models", type=Path, default=MODELS_DIR)
    parser.add_argument(
        "--detector-onnx", type=Path, help="also look with this detector (finetune_det.py's)"
    )
    args = parser.parse_args()
    samples, _ = load_samples(args.folder)
    if args.half is not None:
        samples = [s for s in samples if image_half(s.image.name) == args.half]
    boxer = Boxer(args.models, args.detector_onnx)
    images: list[dict[str, Any]] = []
    complete = 0
    for n, sample in enumerate(samples):
        image = cv2.imread(str(sample.image))
        lines = label_lines(sample.label)
        if image is None or not lines:
            continue
        quads = boxer.label(image, lines)
        complete += all(q is not None for q in quads)
        images.append(
            {
                "image": str(sample.image.resolve()),
                "label": sample.label,
                "complete": all(q is not None for q in quads),
                "lines": [q.round(1).tolist() for q in quads if q is not None],
            }
        )
        if n % 50 == 0:
            print(n, complete, file=sys.stderr)
    args.out.write_text(json.dumps({"folder": str(args.folder.resolve()), "images": images}))
    print(json.dumps({"images": len(images), "complete": complete}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

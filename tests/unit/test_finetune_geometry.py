"""tools/models/finetune_det.py trains the detector's map on what the map marked before the
reader's "unclip": the inverse must give back the region the real TextDetector grew its box from,
and a training crop's target must lie where the plate line is."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.edge.reader.ocr import FloatArray, TextDetector
from support.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "models" / "finetune_det.py"


# tools/models is no package; torch is imported only where it is used
finetune_det = load_script(SCRIPT, "finetune_det")


class MapModel:
    """A detector 'model' whose probability map is one filled rectangle."""

    def __init__(self, shape: tuple[int, int], rect: tuple[int, int, int, int]) -> None:
        self.shape = shape
        self.rect = rect

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.shape[0], self.shape[1], 3)

    def __call__(self, x: FloatArray) -> FloatArray:
        out = np.zeros((1, *self.shape, 1), np.float32)
        x0, y0, x1, y1 = self.rect
        out[0, y0:y1, x0:x1] = 0.9
        return out


@settings(max_examples=150, deadline=None)
@given(
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
    w=st.integers(12, 200),
    h=st.integers(6, 60),
)
def test_before_unclip_recovers_the_region_the_detector_grew_its_box_from(
    fx: float, fy: float, w: int, h: int
) -> None:
    shape = (384, 640)
    # anywhere its grown box stays inside the frame (the detector clips a box at the edges,
    # and what was clipped cannot be recovered): the growth is at most 32 px here
    x = 40 + round(fx * (shape[1] - 80 - w))
    y = 40 + round(fy * (shape[0] - 80 - h))
    detector = TextDetector(MapModel(shape, (x, y, x + w, y + h)))
    boxes = detector.detect(np.zeros((*shape, 3), np.uint8))
    assert len(boxes) == 1
    (cx, cy), (rw, rh), _ = finetune_det.before_unclip(boxes[0].quad)
    if rw < rh:
        rw, rh = rh, rw
    # the region was w x h at (x, y) (the 2x2 dilation and the contour through the edge
    # pixels' centres cancel out: on a grid of sizes the inverse was exact to 1e-4 px)
    assert abs(max(rw, rh) - max(w, h)) <= 0.5
    assert abs(min(rw, rh) - min(w, h)) <= 0.5
    assert abs(cx - (x + w / 2)) <= 0.5
    assert abs(cy - (y + h / 2)) <= 0.5


def test_a_crop_around_a_plate_line_has_its_target_under_the_line() -> None:
    image = np.full((350, 460, 3), 128, np.uint8)
    cv2.rectangle(image, (200, 250), (280, 272), (255, 255, 255), -1)
    quad = np.array([[195, 245], [285, 245], [285, 277], [195, 277]], np.float32)
    rng = random.Random(3)
    seen = 0
    for _ in range(20):
        x, target = finetune_det.sample(image, [quad], (128, 128), (384, 640), rng)
        assert x.shape == (3, 128, 128)
        assert target.shape == (128, 128)
        assert set(np.unique(target)) <= {0.0, 1.0}
        if target.any():
            seen += 1
            ys, xs = np.nonzero(target)
            # the target's pixels are the white line's: bright in the normalized input
            assert float(x[:, ys, xs].mean()) > float(x.mean())
    assert seen >= 12  # most crops are taken around a line

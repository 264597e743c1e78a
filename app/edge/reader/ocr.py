"""Text detection and line recognition: numpy/OpenCV around two models (PaddleOCR PP-OCRv4 det,
PP-OCRv6 small rec).

The models are called through ``Model`` (NHWC float32 in, one float32 tensor out), so the same
code runs the committed TFLite files (``litert.LiteRTModel``) and, in tests or tools, anything
else with that shape. Detection is a DB text map: threshold, contours, rotated rectangles,
expanded ("unclip") like PaddleOCR; recognition is CTC greedy decoding over a small charset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Image = npt.NDArray[Any]

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SEPARATORS = "-."

# The DB detector was trained on BGR pixels scaled to 0..1 and normalized with the ImageNet
# mean and deviation (PaddleOCR's NormalizeImage); fed the recognizer's -1..1 scaling instead it
# stays blind to most text under ~15 px.
DET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
DET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
# How much a detected region is grown into its box (PaddleOCR: 1.6; tighter crops read plates
# better); tools/models/finetune_det.py trains on its inverse.
UNCLIP_RATIO = 1.4


class Model(Protocol):
    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NHWC, batch 1."""
        ...

    def __call__(self, x: FloatArray) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class TextBox:
    """A detected text line: its rotated rectangle in image pixels (clockwise from top-left)."""

    quad: FloatArray  # (4, 2) float32: tl, tr, br, bl
    score: float

    @property
    def center(self) -> tuple[float, float]:
        c = self.quad.mean(axis=0)
        return float(c[0]), float(c[1])

    @property
    def width(self) -> float:
        return float(np.linalg.norm(self.quad[1] - self.quad[0]))

    @property
    def height(self) -> float:
        return float(np.linalg.norm(self.quad[3] - self.quad[0]))

    def bounds(self) -> tuple[int, int, int, int]:
        """Axis-aligned x0, y0, x1, y1."""
        x0, y0 = self.quad.min(axis=0)
        x1, y1 = self.quad.max(axis=0)
        return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))


@dataclass(frozen=True, slots=True)
class CharRead:
    """One decoded character with the model's probabilities for every A-Z/0-9 at its peak."""

    char: str
    prob: float
    alts: FloatArray  # (36,) over ALNUM; all zeros for a separator
    pos: float = -1.0  # where in the line crop (0 left .. 1 right) it was read; -1 unknown


@dataclass(frozen=True, slots=True)
class LineRead:
    chars: tuple[CharRead, ...]

    @property
    def text(self) -> str:
        return "".join(c.char for c in self.chars)

    @property
    def confidence(self) -> float:
        probs = [c.prob for c in self.chars if c.char in ALNUM]
        if not probs:
            return 0.0
        return float(np.exp(np.mean(np.log(np.maximum(probs, 1e-6)))))


def order_quad(points: FloatArray) -> FloatArray:
    """tl, tr, br, bl for four points of a rectangle."""
    pts = points[np.argsort(points[:, 0])]
    left, right = pts[:2], pts[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


class TextDetector:
    """DB text detection on a letterboxed copy of the frame."""

    def __init__(
        self,
        model: Model,
        *,
        thresh: float = 0.3,
        box_thresh: float = 0.5,
        unclip_ratio: float = UNCLIP_RATIO,
        min_side: float = 4.0,
        max_boxes: int = 40,
    ) -> None:
        self.model = model
        self.thresh = thresh
        self.box_thresh = box_thresh
        self.unclip_ratio = unclip_ratio
        self.min_side = min_side
        self.max_boxes = max_boxes

    def scale_for(self, image: Image) -> float:
        """How much the frame is resized to fit the model's input."""
        _, in_h, in_w, _ = self.model.input_shape
        h, w = image.shape[:2]
        return float(min(in_h / h, in_w / w))

    def detect(self, image: Image) -> list[TextBox]:
        _, in_h, in_w, _ = self.model.input_shape
        h, w = image.shape[:2]
        scale = self.scale_for(image)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        resized = cv2.resize(
            image,
            (new_w, new_h),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        x = np.zeros((1, in_h, in_w, 3), np.float32)
        x[0, :new_h, :new_w] = (resized.astype(np.float32) - DET_MEAN) / DET_STD
        prob = self.model(x).reshape(in_h, in_w)[:new_h, :new_w]
        mask = cv2.dilate((prob > self.thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[TextBox] = []
        for contour in contours:
            if len(contour) < 3:
                continue
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
            if min(rw, rh) < 2:
                continue
            x0, y0, bw, bh = cv2.boundingRect(contour)
            region = mask[y0 : y0 + bh, x0 : x0 + bw] * 0
            cv2.fillPoly(region, [contour.reshape(-1, 2) - [x0, y0]], 1)
            score = float(prob[y0 : y0 + bh, x0 : x0 + bw][region > 0].mean())
            if score < self.box_thresh:
                continue
            area, perimeter = rw * rh, 2 * (rw + rh)
            grow = area * self.unclip_ratio / perimeter
            rect = ((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle)
            quad = order_quad(cv2.boxPoints(rect).astype(np.float32)) / scale
            quad[:, 0] = np.clip(quad[:, 0], 0, w - 1)
            quad[:, 1] = np.clip(quad[:, 1], 0, h - 1)
            box = TextBox(quad, score)
            if min(box.width, box.height) >= self.min_side:
                boxes.append(box)
        boxes.sort(key=lambda b: b.score * b.width * b.height, reverse=True)
        return boxes[: self.max_boxes]


def scale_quad(quad: FloatArray, sx: float, sy: float) -> FloatArray:
    """The quad (tl, tr, br, bl) scaled about its center along its own width and height."""
    center = quad.mean(axis=0)
    u = quad[1] - quad[0]
    u = u / max(float(np.linalg.norm(u)), 1e-6)
    v = np.array([-u[1], u[0]], np.float32)
    d = quad - center
    out: FloatArray = (center + np.outer(d @ u, u) * sx + np.outer(d @ v, v) * sy).astype(
        np.float32
    )
    return out


def crop_quad(image: Image, quad: FloatArray) -> Image:
    """The quad warped to an upright rectangle (deskewed), at the frame's resolution."""
    width = max(2, round(max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))))
    height = max(
        2, round(max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1])))
    )
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    crop: Image = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    return crop


class TextRecognizer:
    """CTC line reader; ``classes[0]`` is the blank, lower-case letters count as upper-case."""

    def __init__(
        self,
        model: Model,
        classes: list[str],
        narrow: Model | None = None,
        squeeze: float = 1.35,
    ) -> None:
        self.model = model
        # The same recognizer with a narrower input (fewer CTC steps): a short line fits it
        # whole, at about half the cost.
        self.narrow = narrow
        self.squeeze = squeeze
        self.classes = classes
        n = len(classes)
        # Fold the model's classes onto blank + ALNUM + separators.
        self._target = list(ALNUM + SEPARATORS)
        fold = np.zeros((n, 1 + len(self._target)), np.float32)
        fold[0, 0] = 1
        for i, c in enumerate(classes[1:], 1):
            c = c.upper()
            if c in self._target:
                fold[i, 1 + self._target.index(c)] = 1
            else:
                fold[i, 0] = 1  # anything else reads as nothing
        self._fold = fold

    def read(self, crop: Image, *, narrow: bool = True) -> LineRead:
        """``narrow=False``: always the full-width model (it reads large print a little
        better)."""
        model = self.model
        _, in_h, in_w, _ = model.input_shape
        h, w = crop.shape[:2]
        new_w = min(in_w, max(1, int(np.ceil(in_h * w / h))))
        if (
            narrow
            and self.narrow is not None
            and new_w <= self.narrow.input_shape[2] * self.squeeze
        ):
            model = self.narrow  # a line a little too long for it is squeezed in
            _, in_h, in_w, _ = model.input_shape
            new_w = min(new_w, in_w)
        resized = cv2.resize(crop, (new_w, in_h), interpolation=cv2.INTER_LINEAR)
        x = np.zeros((1, in_h, in_w, 3), np.float32)
        x[0, :, :new_w] = resized.astype(np.float32) * (2 / 255) - 1
        probs = model(x).reshape(-1, len(self.classes)) @ self._fold
        return self.decode(probs, new_w / in_w)

    def decode(self, probs: FloatArray, content: float = 1.0) -> LineRead:
        """``content``: the part of the model's input width the line filled (for ``pos``)."""
        best = probs.argmax(axis=1)
        chars: list[CharRead] = []
        previous = 0
        run_start = 0
        for t, k in enumerate([*best.tolist(), 0]):
            if k != previous:
                if previous != 0:
                    frames = probs[run_start:t]
                    at = int(frames[:, previous].argmax())
                    peak = frames[at]
                    pos = min(1.0, (run_start + at + 0.5) / len(probs) / max(content, 1e-6))
                    char = self._target[previous - 1]
                    n = len(ALNUM)
                    alts = peak[1 : 1 + n] if char in ALNUM else np.zeros(n, np.float32)
                    chars.append(
                        CharRead(char, float(peak[previous]), alts.astype(np.float32), pos)
                    )
                run_start = t
                previous = int(k)
        return LineRead(tuple(chars))

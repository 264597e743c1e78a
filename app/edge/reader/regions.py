"""Where a plate too small for the full-frame text detector may be: a classical proposal.

A plate is a short band of dense, high-contrast vertical strokes (its characters) on a flat
background. On a grey copy of the frame at most 640 px wide: black-hat and top-hat (dark print
on light, light on dark) with a character-sized kernel, horizontal gradient, blur and closing
so the strokes of one plate merge into one blob, Otsu threshold, and the blobs of a plate's
shape (wider than tall, not a large part of the frame) ranked by stroke density and size.
Costs ~4 ms per 1280x720 frame; the text detector then looks at each region zoomed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.edge.reader.ocr import Image


@dataclass(frozen=True, slots=True)
class Region:
    x: float
    y: float
    w: float
    h: float
    score: float


def plate_regions(
    image: Image,
    *,
    max_regions: int = 3,
    width: int = 640,
    min_aspect: float = 1.2,
    max_aspect: float = 8.0,
    max_height_frac: float = 0.2,
) -> list[Region]:
    """Up to ``max_regions`` plate-shaped regions of dense strokes, best first (frame pixels)."""
    h, w = image.shape[:2]
    scale = min(1.0, width / max(w, h))
    small = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (17, 7))
    strokes = cv2.max(
        cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel),
        cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel),
    )
    grad = np.abs(cv2.Sobel(strokes, cv2.CV_32F, 1, 0, ksize=3))
    grad = (255 * grad / max(float(grad.max()), 1.0)).astype(np.uint8)
    grad = cv2.GaussianBlur(grad, (5, 5), 0)
    grad = cv2.morphologyEx(grad, cv2.MORPH_CLOSE, kernel)
    _, mask = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    square = np.ones((3, 3), np.uint8)
    mask = cv2.dilate(cv2.erode(mask, square, iterations=2), square, iterations=2)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found: list[Region] = []
    for contour in contours:
        x, y, bw, bh = cv2.boundingRect(contour)
        if bh < 5 or bw < 12 or not min_aspect <= bw / bh <= max_aspect:
            continue
        if bh > max_height_frac * grey.shape[0]:
            continue
        score = float(grad[y : y + bh, x : x + bw].mean()) * float(np.sqrt(bw * bh))
        found.append(Region(x / scale, y / scale, bw / scale, bh / scale, score))
    found.sort(key=lambda r: r.score, reverse=True)
    return found[:max_regions]

"""What on a plate is not its number: the blue EU band at its left, coloured emblems between
its character groups (German registration seals, coats of arms).

Found by colour around one detected text line: the band is a run of saturated blue columns at
the line's left end (looked for up to one line height left of the line's box, where the text
detector often stops); emblems are runs of saturated columns of another hue than the plate's
background inside the line. The recognizer's characters read there (``CharRead.pos``) are left
out of the plate; the band's letters are its country code.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from app.edge.reader.ocr import Image, TextBox, crop_quad


@dataclass(frozen=True, slots=True)
class Marks:
    band_end: float  # where the band ends, as a fraction of the line crop's width; -1: none
    band: Image | None  # the band's crop (for reading its code), None: no band
    emblems: tuple[tuple[float, float], ...]  # spans of the line crop's width


def _runs(cols: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], cols, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def plate_marks(image: Image, box: TextBox, crop: Image) -> Marks | None:
    """The band and emblems around a line (``crop`` is its upright crop), None: neither."""
    if image.ndim != 3 or crop.shape[1] < 8:
        return None
    height = box.height
    u = box.quad[1] - box.quad[0]
    u = u / max(float(np.linalg.norm(u)), 1e-6)
    ext = box.quad.copy()
    ext[0] -= u * height
    ext[3] -= u * height
    h_img, w_img = image.shape[:2]
    ext[:, 0] = np.clip(ext[:, 0], 0, w_img - 1)
    ext[:, 1] = np.clip(ext[:, 1], 0, h_img - 1)
    wide = crop_quad(image, ext)
    offset = max(0, wide.shape[1] - crop.shape[1])
    width = wide.shape[1] - offset
    rows = wide.shape[0]
    hsv = cv2.cvtColor(wide, cv2.COLOR_BGR2HSV)
    hue, sat, val = hsv[..., 0].astype(np.int16), hsv[..., 1], hsv[..., 2]
    blue = (hue >= 95) & (hue <= 135) & (sat >= 90) & (val >= 40)
    band_end, band = -1.0, None
    for a, b in _runs(blue.mean(axis=0) >= 0.45):
        if a > offset + 0.2 * width:
            break
        if b - a >= 0.15 * rows and b <= offset + 0.35 * width:
            band_end = (b - offset) / width
            band = wide[:, a:b]
            break
    # emblems: saturated columns of another hue than the background, right of the band
    start = max(offset, int(offset + max(band_end, 0.0) * width) + 1)
    inner_h, inner_s, inner_v = hue[:, start:], sat[:, start:], val[:, start:]
    coloured = (inner_s >= 80) & (inner_v >= 50)
    if coloured.mean() > 0.4:  # a coloured plate (yellow NL): other hues only
        bg = int(np.median(inner_h[coloured]))
        diff = np.abs(inner_h - bg)
        coloured &= np.minimum(diff, 180 - diff) > 20
    emblems = tuple(
        ((start + a - offset) / width, (start + b - offset) / width)
        for a, b in _runs(coloured.mean(axis=0) >= 0.2)
        if b - a >= 0.15 * rows and a > 0
    )
    if band is None and not emblems:
        return None
    return Marks(band_end, band, emblems)

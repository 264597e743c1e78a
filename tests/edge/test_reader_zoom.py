"""The zoom's proposals (``regions.char_regions``) and its magnified look: a plate too small
for the full-frame detector is a row (or two stacked rows) of character-sized blobs; the
detector then looks at it magnified so that it stands ``zoom_px`` high in its input."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from app.edge.reader.grammar import PlateGrammar
from app.edge.reader.ocr import LineRead, TextBox, TextDetector
from app.edge.reader.pipeline import PlatePipeline
from app.edge.reader.regions import Region, char_regions

FONT = cv2.FONT_HERSHEY_SIMPLEX
Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


def _plate(lines: tuple[str, ...], height: int) -> Any:
    """Black print on a white plate with a dark rim (print a third of a two-line plate's
    height, as on a Vietnamese motorbike plate), drawn large and shrunk to ``height`` at a
    Vietnamese plate's aspect (the font's wide letters squeezed to a plate's narrow ones)."""
    big = 120
    scale = big / (60 if len(lines) == 2 else 32)
    widths = [cv2.getTextSize(text, FONT, scale, 3)[0][0] for text in lines]
    width = int(max(widths) * 1.15)
    plate = np.full((big, width, 3), 240, np.uint8)
    for k, (text, tw) in enumerate(zip(lines, widths, strict=True)):
        y = int(big * ((0.42 + 0.46 * k) if len(lines) == 2 else 0.8))
        cv2.putText(plate, text, ((width - tw) // 2, y), FONT, scale, (25, 25, 25), 3)
    cv2.rectangle(plate, (0, 0), (width - 1, big - 1), (30, 30, 30), 3)
    aspect = 1.35 if len(lines) == 2 else 4.5  # a motorbike's 190x140 mm, a car's 520x110
    out: Any = cv2.resize(plate, (round(height * aspect), height), interpolation=cv2.INTER_AREA)
    return out


def _scene(plate: Any, x: int, y: int, seed: int, size: tuple[int, int] = (460, 350)) -> Any:
    """The plate in a cluttered frame: blurred noise, a few dark and light blocks (a vehicle's
    parts), and a line of burnt-in text along the top (a camera's clock and lane name)."""
    rng = np.random.default_rng(seed)
    w, h = size
    frame = cv2.GaussianBlur(
        np.clip(rng.normal(125, 30, (h, w, 3)), 0, 255).astype(np.uint8), (5, 5), 0
    )
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        shade = int(rng.choice([30, 200]))
        cv2.rectangle(frame, (x0, y0), (x0 + int(rng.integers(20, 120)), y0 + 30), (shade,) * 3, -1)
    cv2.putText(frame, "2026-12-06 14:03:22 LANE 1", (6, 20), FONT, 0.45, (255, 255, 255), 1)
    ph, pw = plate.shape[:2]
    frame[y : y + ph, x : x + pw] = plate
    return frame


def _covers(region: Region, box: Box) -> bool:
    x, y, w, h = box
    cx, cy = region.x + region.w / 2, region.y + region.h / 2
    return x <= cx <= x + w and y <= cy <= y + h


def test_small_plates_are_among_the_proposals() -> None:
    # 60 scenes drawn from a fixed seed, alternately a motorbike's two-line plate 26-48 px high
    # and a car's one-line one (print 9-16 px high; below ~9 px neighbouring characters of this
    # font merge into one blob at places). A proposal is no promise: a clutter block over the
    # plate or on-screen text ranked above it may cost one in a hundred (0.6 % of 1,500 such
    # scenes on 2026-12-06), hence the margin.
    rng = np.random.default_rng(2026)
    found = whole = 0
    for n in range(60):
        two_lines = n % 2 == 0
        height = int(rng.integers(26, 49))
        lines = ("59-X1", "123.45") if two_lines else ("51F-123.45",)
        plate = _plate(lines, height if two_lines else height // 2 + 6)
        ph, pw = plate.shape[:2]
        x = int(rng.uniform(0.1, 0.8) * (460 - pw))
        y = int(rng.uniform(0.3, 0.85) * (350 - ph))
        regions = char_regions(_scene(plate, x, y, seed=int(rng.integers(0, 10_000))))
        hits = [r for r in regions if _covers(r, (x, y, pw, ph))]
        found += bool(hits)
        # both rows, one region: the zoom sees the whole plate
        whole += two_lines and bool(hits) and max(r.h for r in hits) >= 0.5 * ph
    assert found >= 57
    assert whole >= 27


def test_rows_longer_than_a_plate_are_not_proposed() -> None:
    # a sign's long word or a line of on-screen text: more characters than a plate's row
    frame = np.full((350, 460, 3), 120, np.uint8)
    cv2.putText(frame, "PLATESMANIACOM", (10, 60), FONT, 0.7, (255, 255, 255), 1)
    cv2.putText(frame, "KHACHSANHOABINH", (10, 300), FONT, 0.7, (20, 20, 20), 1)
    assert char_regions(frame) == []
    cv2.putText(frame, "29A1234", (200, 180), FONT, 0.7, (20, 20, 20), 1)
    assert [(round(r.x), round(r.y)) for r in char_regions(frame)] == [(201, 165)]
    # nor one wider than max_aspect glyph heights (this row is 6 heights wide)
    assert char_regions(frame, max_aspect=5.0) == []


def test_no_proposal_in_a_plain_or_tiny_frame() -> None:
    assert char_regions(np.full((350, 460, 3), 128, np.uint8)) == []
    assert char_regions(np.zeros((3, 3, 3), np.uint8)) == []
    grey = np.full((240, 320), 200, np.uint8)
    cv2.putText(grey, "29A-123", (100, 120), FONT, 0.5, 20, 1)
    assert char_regions(grey)  # a grey frame is read as it is


def test_a_large_frame_is_proposed_in_frame_pixels() -> None:
    plate = _plate(("51F-123.45",), 40)
    frame = _scene(plate, 900, 520, seed=3, size=(1280, 720))
    ph, pw = plate.shape[:2]
    assert any(_covers(r, (900, 520, pw, ph)) for r in char_regions(frame))


# -- the magnified look -----------------------------------------------------------------------


class _Shape:
    def __init__(self, h: int, w: int) -> None:
        self.input_shape = (1, h, w, 3)


class _Recording(TextDetector):
    """A detector that finds nothing and records the scale it would look at each crop."""

    def __init__(self, h: int, w: int) -> None:
        self.model = _Shape(h, w)  # type: ignore[assignment]
        self.looks: list[tuple[tuple[int, ...], float]] = []

    def detect(self, image: Any) -> list[TextBox]:
        self.looks.append((image.shape, self.scale_for(image)))
        return []


class _Nothing:
    def read(self, crop: Any, *, narrow: bool = True) -> LineRead:
        return LineRead(())


def test_the_zoom_magnifies_each_proposal_to_zoom_px() -> None:
    plate = _plate(("59-X1", "123.45"), 26)
    frame = _scene(plate, 200, 230, seed=5)
    zoom = _Recording(160, 320)
    pipeline = PlatePipeline(
        [_Recording(448, 800)],
        _Nothing(),  # type: ignore[arg-type]
        PlateGrammar(("vn",)),
        zoom=zoom,
        zoom_px=90.0,
    )
    assert pipeline.read_image(frame) == []
    regions = char_regions(frame, max_regions=pipeline.zoom_regions)
    assert len(zoom.looks) == len(regions) >= 1
    for region, (shape, scale) in zip(regions, zoom.looks, strict=True):
        # the region stands zoom_px high in the input (at most 8x, never shrunk), unless the
        # region and as much again around it fill the input first
        want = min(8.0, max(1.0, 90.0 / region.h), 160 / (2 * region.h), 320 / (3 * region.w))
        assert scale >= 0.8 * want, (region, shape, scale)
        assert shape[0] >= 2 * region.h - 1 and shape[1] >= 3 * region.w - 1
    # the plate's proposal: ~26 px high, looked at ~3.5x (fitting it and as much again around
    # it, as before, gave ~2x)
    ph, pw = plate.shape[:2]
    at_plate = [
        s for r, (_, s) in zip(regions, zoom.looks, strict=True) if _covers(r, (200, 230, pw, ph))
    ]
    assert at_plate and at_plate[0] >= 3.0


def test_zoom_px_is_a_height() -> None:
    with pytest.raises(ValueError, match="zoom_px"):
        PlatePipeline([_Recording(448, 800)], _Nothing(), PlateGrammar(("vn",)), zoom_px=0)  # type: ignore[arg-type]

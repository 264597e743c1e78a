"""Frame -> plates: detect text lines, crop and deskew each, read it, group lines into plates.

Two lines are one candidate plate when one sits right above the other (the two-line Vietnamese
car and motorbike plates), two side by side on one baseline when a gap split one line; every
single line is a candidate too. Each candidate goes through the grammar; the plates chosen are
the best candidates that share no line, preferring the deployment's first grammar, then reads
that hold a digit, then the tallest confident text (a plate's number is its largest print).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from app.contract import VehicleType
from app.edge.reader import PlateBox, PlateRead
from app.edge.reader.band import plate_marks
from app.edge.reader.grammar import PlateGrammar, PlateMatch, candidate_rank
from app.edge.reader.ocr import (
    ALNUM,
    CharRead,
    Image,
    LineRead,
    TextBox,
    TextDetector,
    TextRecognizer,
    crop_quad,
    scale_quad,
)
from app.edge.reader.regions import char_regions

MAX_CANDIDATES = 5


@dataclass(frozen=True, slots=True)
class PlateResult:
    plate: str  # normalized (matching)
    display: str
    confidence: float
    box: PlateBox
    vehicle_type: VehicleType
    candidates: tuple[tuple[str, float], ...]  # display forms, best first (the plate included)
    raw: str  # what the recognizer read, lines joined by " / "
    line_height: float  # pixels, of its tallest text line
    rank: tuple[float, ...]  # lower is better (see PlatePipeline)
    grammar: str  # which region profile it matched: "vn", "us", "br", "eu" or "generic"
    country: str = ""  # the code in the plate's blue EU band ("D", "NL", ...), "" none seen


def plate_reads(results: Sequence[PlateResult]) -> list[PlateRead]:
    """The readers' answer (``PlateReader.read``) for the pipeline's results."""
    return [
        PlateRead(
            text=r.display,
            confidence=r.confidence,
            box=r.box,
            vehicle_type=r.vehicle_type,
            plate=r.plate,
            candidates=r.candidates,
            country=r.country,
        )
        for r in results
    ]


@dataclass(frozen=True, slots=True)
class _Line:
    box: TextBox
    read: LineRead
    band: str = ""  # the country code read in the blue band left of the line


@dataclass(frozen=True, slots=True)
class _Candidate:
    lines: tuple[int, ...]
    matches: tuple[PlateMatch, ...]
    rank: tuple[float, ...]


class PlatePipeline:
    """Detectors run in order, cheapest first (a small input, then the full-frame one): a
    plate found by an earlier one is kept when it matched the first grammar, surely
    (``trust_confidence``), and its text was large enough in that detector's input
    (``trust_px``) to be seen whole; otherwise the next detector looks again."""

    def __init__(
        self,
        detectors: Sequence[TextDetector],
        recognizer: TextRecognizer,
        grammar: PlateGrammar,
        *,
        max_plates: int = 1,
        max_lines: int = 8,
        min_line_height: float = 8.0,
        trust_px: float = 14.0,
        trust_confidence: float = 0.9,
        min_early_scale: float = 0.25,
        min_aspect: float = 1.3,
        max_aspect: float = 12.0,
        crop_scale: tuple[float, float] = (1.1, 0.85),
        coarse_px: float = 32.0,
        zoom: TextDetector | None = None,
        zoom_regions: int = 5,
        zoom_px: float = 90.0,
        zoom_off_layout: bool = False,
        zoom_tiles: int = 0,
        tile_detector: TextDetector | None = None,
        tile_overlap: float = 0.25,
    ) -> None:
        if not detectors:
            raise ValueError("need at least one detector")
        self.detectors = list(detectors)
        self.recognizer = recognizer
        self.grammar = grammar
        self.max_plates = max_plates
        self.max_lines = max_lines
        self.min_line_height = min_line_height
        self.trust_px = trust_px
        self.trust_confidence = trust_confidence
        self.min_early_scale = min_early_scale
        self.min_aspect = min_aspect
        self.max_aspect = max_aspect
        self.crop_scale = crop_scale
        self.coarse_px = coarse_px
        self.zoom = zoom
        self.zoom_regions = zoom_regions
        if zoom_px <= 0:
            raise ValueError("zoom_px: the height a zoomed region stands in the detector's input")
        self.zoom_px = zoom_px
        self.zoom_off_layout = zoom_off_layout
        if zoom_tiles < 0 or zoom_tiles == 1:
            raise ValueError("zoom_tiles: 0 (off) or a grid of 2 or more tiles a side")
        self.zoom_tiles = zoom_tiles
        self.tile_detector = tile_detector or self.detectors[-1]
        self.tile_overlap = tile_overlap

    def read_image(self, image: Image) -> list[PlateResult]:
        if image.size == 0 or image.shape[0] < 4 or image.shape[1] < 4:
            return []
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        passes: list[list[PlateResult]] = []
        skipped: list[TextDetector] = []
        for n, detector in enumerate(self.detectors):
            last = n == len(self.detectors) - 1
            if not last and detector.scale_for(image) < self.min_early_scale:
                skipped.append(detector)  # a large frame: it would see only the largest print
                continue
            results = self._read_with(detector, image)
            if results and not last and self._trusted(results[0], detector.scale_for(image)):
                return results
            passes.append(results)
        # No pass was sure: the finest detector's plates, unless a cheaper one found a plate of a
        # better grammar or with more characters (a finer one may cut a line in two).
        found = [(n, p) for n, p in enumerate(passes) if p]
        for detector in skipped if not found else ():
            # nothing found: the largest print (a close-up in a large frame) is for it
            if results := self._read_with(detector, image):
                found = [(-1, results)]
                break
        best: list[PlateResult] = []
        if found:
            _, best = min(found, key=lambda f: (*f[1][0].rank[:2], -len(f[1][0].plate), -f[0]))
        off_layout = bool(best) and best[0].rank[:3] > (0.0, 0.0, 0.0)
        if self.zoom is not None and (not best or (self.zoom_off_layout and off_layout)):
            # Nothing (or, with ``zoom_off_layout``, nothing of the first grammar's layouts):
            # maybe a plate too small for the full-frame detector. The cheap detector looks
            # again at the likeliest rows of characters, magnified; a better-ranked plate
            # there wins. (Off-layout reads too: +3 points on US scenes, +20 % time, 2026-11.)
            zoomed = self._zoom(self.zoom, image)
            if zoomed and (not best or zoomed[0].rank[:3] < best[0].rank[:3]):
                return zoomed
        if self.zoom_tiles and not best:
            # Still nothing: a plate too small for every detector at the frame's scale (a
            # motorbike's plate across a street). The full-frame detector looks at each tile of
            # an overlapping grid, every tile upscaled to its input.
            return self._zoom_tiles(image)
        return best

    def _trusted(self, result: PlateResult, scale: float) -> bool:
        """A plate from a cheaper detector that needs no second look."""
        return (
            result.grammar == self.grammar.regions[0]
            and result.confidence >= self.trust_confidence
            and result.line_height * scale >= self.trust_px
        )

    def _zoom(self, detector: TextDetector, image: Image) -> list[PlateResult]:
        """The detector's look at each proposed region, magnified so that the region stands
        ``zoom_px`` high in its input (a two-line motorbike plate 20 px high in the frame is
        found at ~4x, not at the ~2x that fitting the region and its surroundings gave)."""
        h, w = image.shape[:2]
        _, in_h, in_w, _ = detector.model.input_shape
        results: list[PlateResult] = []
        regions = char_regions(image, max_regions=self.zoom_regions, max_aspect=self.max_aspect)
        for region in regions:
            magnify = min(8.0, max(1.0, self.zoom_px / max(region.h, 1.0)))
            # the crop the input holds at that magnification, never less than the region with
            # as much again beside it on each side (a row may be part of a plate's line: a
            # sticker or a bolt can split it) and half as much above and below
            crop_w = max(in_w / magnify, 3 * region.w)
            crop_h = max(in_h / magnify, 2 * region.h)
            cx, cy = region.x + region.w / 2, region.y + region.h / 2
            x0 = int(max(0.0, min(w - crop_w, cx - crop_w / 2)))
            y0 = int(max(0.0, min(h - crop_h, cy - crop_h / 2)))
            crop = image[y0 : min(h, int(y0 + crop_h) + 1), x0 : min(w, int(x0 + crop_w) + 1)]
            if crop.shape[0] < 4 or crop.shape[1] < 4:
                continue
            boxes = detect_in(detector, crop, x0, y0)
            results += self._read_boxes(image, boxes, detector.scale_for(crop))
        results.sort(key=lambda r: r.rank)
        return results[: self.max_plates]

    def tiles(self, shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
        """The zoom's grid (``tile_grid``): ``zoom_tiles`` tiles a side."""
        return tile_grid(shape, self.zoom_tiles, self.tile_overlap)

    def _zoom_tiles(self, image: Image) -> list[PlateResult]:
        detector = self.tile_detector
        boxes: list[TextBox] = []
        scale = 0.0
        for x0, y0, x1, y1 in self.tiles(image.shape):
            tile = image[y0:y1, x0:x1]
            boxes += detect_in(detector, tile, x0, y0)
            scale = detector.scale_for(tile)
        # a line seen whole in two overlapping tiles is read once
        boxes.sort(key=lambda b: b.score * b.width * b.height, reverse=True)
        kept: list[TextBox] = []
        for box in boxes:
            if all(overlap(box, other) < 0.5 for other in kept):
                kept.append(box)
        return self._read_boxes(image, kept, scale)

    def _read_with(self, detector: TextDetector, image: Image) -> list[PlateResult]:
        return self._read_boxes(image, detector.detect(image), detector.scale_for(image))

    def line_crops(
        self, image: Image, detected: Sequence[TextBox], scale: float
    ) -> list[tuple[TextBox, bool, Image]]:
        """The detected lines worth reading, each with whether it is small print and its
        upright crop from the full-resolution image."""
        boxes = [
            b
            for b in detected
            if b.height >= self.min_line_height
            and self.min_aspect * b.height <= b.width <= self.max_aspect * b.height
        ][: self.max_lines]
        crops = []
        for box in boxes:
            # Small print in the detector's input gives a blurred, loose box, and the "unclip"
            # grows a short line by as many pixels up and down as left and right: far more
            # margin above and below than the recognizer wants. A little wider and less tall
            # reads those lines better (large print, as in close-ups, is cropped as detected).
            quad = box.quad
            small = box.height * scale < self.coarse_px
            if small:
                quad = scale_quad(quad, *self.crop_scale)
            crops.append((box, small, crop_quad(image, quad)))
        return crops

    def _read_boxes(
        self, image: Image, detected: Sequence[TextBox], scale: float
    ) -> list[PlateResult]:
        lines = []
        for box, small, crop in self.line_crops(image, detected, scale):
            # the narrow recognizer (half the time) for small print, the full one for large
            read = self.recognizer.read(crop, narrow=small)
            band = ""
            if self.grammar.bands:  # a region with banded plates (EU): band, emblems out
                read, band = self._strip_marks(image, box, crop, read)
            if any(c.char.isalnum() for c in read.chars):
                lines.append(_Line(box, read, band))
        if self.grammar.has_two_lines:
            lines += self._top_lines(image, lines)
        candidates = [
            c for group in self._groups(lines) if (c := self._candidate(lines, group)) is not None
        ]
        candidates.sort(key=lambda c: c.rank)
        used: set[int] = set()
        results: list[PlateResult] = []
        for cand in candidates:
            if used & set(cand.lines):
                continue
            used |= set(cand.lines)
            results.append(self._result(lines, cand))
            if len(results) >= self.max_plates:
                break
        return results

    def _top_lines(self, image: Image, lines: Sequence[_Line]) -> list[_Line]:
        """The top line of two-line plates the detector missed: above a line that reads as
        a plate's bottom line (4-5 digits) and has no line over it, read the strip of the same
        width and height (a motorbike's 59-X1 is short print, often not detected)."""
        found: list[_Line] = []
        pairs = {g[1] for g in self._groups(lines) if len(g) == 2}
        for k, line in enumerate(lines):
            text = "".join(c.char for c in line.read.chars if c.char in ALNUM)
            if k in pairs or not (text.isdigit() and 4 <= len(text) <= 5):
                continue
            quad = line.box.quad
            up = quad[0] - quad[3]  # bottom-left -> top-left: one line height, upward
            top = (quad + up * 1.05).astype(np.float32)
            x0, y0 = top.min(axis=0)
            if y0 < 0 or x0 < 0:
                continue
            read = self.recognizer.read(crop_quad(image, top))
            if sum(c.char in ALNUM for c in read.chars) >= 2:
                found.append(_Line(TextBox(top, line.box.score), read))
        return found

    def _strip_marks(
        self, image: Image, box: TextBox, crop: Image, read: LineRead
    ) -> tuple[LineRead, str]:
        """The read without what was read in the blue band or on an emblem, and the band's
        country code ("" when no band, or its code is not one of the regions')."""
        marks = plate_marks(image, box, crop)
        if marks is None:
            return read, ""
        kept: list[CharRead] = []
        in_band: list[CharRead] = []
        for c in read.chars:
            if 0 <= c.pos <= marks.band_end:
                in_band.append(c)
            elif c.pos >= 0 and any(a <= c.pos <= b for a, b in marks.emblems):
                continue
            else:
                kept.append(c)
        code = "".join(c.char for c in in_band if c.char.isalpha())
        if marks.band is not None and code not in self.grammar.bands:
            # the code is small print at the band's foot, often outside the detected line
            foot = marks.band[int(marks.band.shape[0] * 0.45) :]
            if foot.shape[0] >= 4 and foot.shape[1] >= 4:
                code = "".join(c.char for c in self.recognizer.read(foot).chars if c.char.isalpha())
        while kept and kept[0].char not in ALNUM:
            kept.pop(0)
        return LineRead(tuple(kept)), code if code in self.grammar.bands else ""

    @staticmethod
    def _groups(lines: Sequence[_Line]) -> list[tuple[int, ...]]:
        groups: list[tuple[int, ...]] = [(i,) for i in range(len(lines))]
        for i, a in enumerate(lines):
            ax0, ay0, ax1, ay1 = a.box.bounds()
            for j, b in enumerate(lines):
                if i == j:
                    continue
                bx0, by0, bx1, by1 = b.box.bounds()
                ha, hb = ay1 - ay0, by1 - by0
                if not 0.4 <= ha / max(hb, 1) <= 2.5:
                    continue
                overlap = min(ax1, bx1) - max(ax0, bx0)
                # b right below a, horizontally overlapping: a two-line plate
                a_above = ay0 + ay1 < by0 + by1
                gap = by0 - ay1
                if (
                    a_above
                    and overlap >= 0.5 * min(ax1 - ax0, bx1 - bx0)
                    and gap <= 0.8 * max(ha, hb)
                ):
                    groups.append((i, j))
                # b right of a on the same row: one line split in two
                same_row = abs((ay0 + ay1) - (by0 + by1)) / 2 <= 0.35 * max(ha, hb)
                if (
                    same_row
                    and 0.7 <= ha / max(hb, 1) <= 1.4
                    and ax0 < bx0
                    and -0.2 * ha <= bx0 - ax1 <= 1.2 * max(ha, hb)
                    and ax1 < bx1
                ):
                    groups.append((i, j, -1))  # -1: join into one line
        return groups

    def _candidate(self, lines: Sequence[_Line], group: tuple[int, ...]) -> _Candidate | None:
        if group[-1] == -1:
            i, j = group[:2]
            chars: list[list[CharRead]] = [[*lines[i].read.chars, *lines[j].read.chars]]
            members: tuple[int, ...] = (i, j)
        else:
            chars = [list(lines[k].read.chars) for k in group]
            members = group
        band = next((lines[k].band for k in members if lines[k].band), "")
        matches = self.grammar.match_all(chars, band)
        if not matches:
            return None
        height = max(lines[k].box.height for k in members)
        if "/" not in matches[0].template:
            # lines stacked that fit no two-line format (a US state name over the number)
            height /= len(chars)
        # (a two-line format's print is as tall as its lines: not outranked by its bottom line)
        rank = candidate_rank(self.grammar, matches[0], height)
        return _Candidate(members, tuple(matches), rank)

    def _result(self, lines: Sequence[_Line], cand: _Candidate) -> PlateResult:
        best = cand.matches[0]
        x0 = min(lines[k].box.bounds()[0] for k in cand.lines)
        y0 = min(lines[k].box.bounds()[1] for k in cand.lines)
        x1 = max(lines[k].box.bounds()[2] for k in cand.lines)
        y1 = max(lines[k].box.bounds()[3] for k in cand.lines)
        seen: dict[str, tuple[str, float]] = {}
        for m in cand.matches:
            seen.setdefault(m.plate, (m.display, round(m.confidence, 4)))
        order = sorted(cand.lines, key=lambda k: lines[k].box.bounds()[1])
        return PlateResult(
            plate=best.plate,
            display=best.display,
            confidence=round(best.confidence, 4),
            box=PlateBox(x0, y0, x1 - x0, y1 - y0),
            vehicle_type=_vehicle_type(best),
            candidates=tuple(list(seen.values())[:MAX_CANDIDATES]),
            raw=" / ".join(lines[k].read.text for k in order),
            line_height=max(lines[k].box.height for k in cand.lines),
            grammar=best.grammar,
            rank=cand.rank,
            country=best.country,
        )


def tile_grid(shape: tuple[int, ...], n: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """``n`` tiles a side over a frame of ``shape``, each overlapping its neighbours by
    ``overlap`` of a tile: (x0, y0, x1, y1) in frame pixels, row by row."""
    h, w = shape[:2]
    out = []
    for axis_len in (w, h):
        size = axis_len / (n - (n - 1) * overlap)
        step = size * (1 - overlap)
        out.append([(round(k * step), min(axis_len, round(k * step + size))) for k in range(n)])
    return [(x0, y0, x1, y1) for y0, y1 in out[1] for x0, x1 in out[0]]


def detect_in(detector: TextDetector, crop: Image, x0: int, y0: int) -> list[TextBox]:
    """The detector's boxes in a crop whose top-left corner is (x0, y0) of the frame, in frame
    pixels."""
    offset = np.array([x0, y0], np.float32)
    return [TextBox(b.quad + offset, b.score) for b in detector.detect(crop)]


def overlap(a: TextBox, b: TextBox) -> float:
    """Intersection over the smaller box's area (axis-aligned bounds)."""
    ax0, ay0, ax1, ay1 = a.bounds()
    bx0, by0, bx1, by1 = b.bounds()
    iw = min(ax1, bx1) - max(ax0, bx0)
    ih = min(ay1, by1) - max(ay0, by0)
    if iw <= 0 or ih <= 0:
        return 0.0
    small = min((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0))
    return iw * ih / max(small, 1)


def _vehicle_type(match: PlateMatch) -> VehicleType:
    if match.grammar != "vn":
        return VehicleType.UNKNOWN
    if "/" in match.template and match.template.startswith(("99-", "99/999")):
        return VehicleType.MOTORBIKE  # 59-X1 / 123.45, and the older 29 / 527-HD
    return VehicleType.CAR

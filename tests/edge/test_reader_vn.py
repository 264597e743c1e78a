"""Vietnamese scenes: the ``vn`` profile takes every Vietnamese plate layout and nothing else
(clocks, dates, phone numbers, signs, on-screen text), the two lines of a motorbike plate are
read as one plate (also when the detector saw only the bottom line), and the zoom tiles."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.contract import VehicleType
from app.edge.config import ReaderConfig
from app.edge.reader.grammar import PlateGrammar
from app.edge.reader.ocr import ALNUM, CharRead, FloatArray, LineRead, TextBox, TextDetector
from app.edge.reader.pipeline import PlatePipeline

REPO = Path(__file__).resolve().parents[2]
VN = PlateGrammar(("vn",))
VN_FIRST = PlateGrammar(("vn", "generic"))

DIGITS = "0123456789"
SERIES = "ABCDEFGHKLMNPRSTUVXYZ"  # no I, J, O, Q, W
PROVINCE = st.integers(11, 99).map(lambda n: f"{n:02d}")
MILITARY_FIRST = "ABCDHKNPQTV"


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=DIGITS, min_size=n, max_size=n)


def letters(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=n)


@st.composite
def vn_plates(draw: st.DrawFn) -> tuple[str, str]:
    """A Vietnamese plate of any layout: (text as printed, lines split by " / "; kind)."""
    kind = draw(st.sampled_from(["car", "car2", "moto", "moto_old", "military", "diplomatic"]))
    p = draw(PROVINCE)
    five = draw(digits(5))
    number = draw(st.sampled_from([f"{five[:3]}.{five[3:]}", draw(digits(4))]))
    if kind == "car":
        return f"{p}{draw(letters(SERIES, draw(st.sampled_from([1, 2]))))}-{number}", kind
    if kind == "car2":
        return f"{p}{draw(letters(SERIES, draw(st.sampled_from([1, 2]))))} / {number}", kind
    if kind == "moto":
        series = draw(
            st.sampled_from(
                [
                    draw(letters(SERIES, 1)) + draw(letters("123456789", 1)),
                    draw(letters(SERIES, 2)),
                ]
            )
        )
        return f"{p}-{series} / {number}", kind
    if kind == "moto_old":
        tail = draw(
            st.one_of(
                letters(SERIES, 2),  # 29 / 527-HD
                letters(SERIES, 1),  # 43 / 475-M
                st.builds(str.__add__, letters(SERIES, 1), letters("123456789", 1)),  # X7
            )
        )
        return f"{p} / {draw(digits(3))}-{tail}", kind
    if kind == "military":
        code = draw(letters(MILITARY_FIRST, 1)) + draw(letters(SERIES, 1))
        sep = draw(st.sampled_from(["-", " / "]))
        return f"{code}{sep}{draw(digits(2))}-{draw(digits(2))}", kind
    return f"{p}-{draw(letters(SERIES, 2))}-{draw(digits(3))}-{draw(digits(2))}", kind


def _alnum(text: str) -> str:
    return "".join(c for c in text if c in ALNUM)


@settings(max_examples=400, deadline=None)
@given(plate=vn_plates())
def test_every_vietnamese_layout_is_a_plate(plate: tuple[str, str]) -> None:
    text, kind = plate
    for grammar in (VN, VN_FIRST):
        match = grammar.parse(text)
        assert match is not None, text
        assert match.grammar == "vn"
        assert match.plate == _alnum(text)
        assert match.corrections == 0
        assert match.display == text.replace(" / ", " ")
    want = VehicleType.MOTORBIKE if kind.startswith("moto") else VehicleType.CAR
    from app.edge.reader.pipeline import _vehicle_type

    match = VN.parse(text)
    assert match is not None
    assert _vehicle_type(match) is want


# -- what is not a plate --------------------------------------------------------------------

SEPARATOR = st.sampled_from(["", "-", ".", " ", "/"])  # ":" is no class: read as these


@st.composite
def clocks(draw: st.DrawFn) -> str:
    sep = draw(SEPARATOR)
    parts = [f"{draw(st.integers(0, 23)):02d}", f"{draw(st.integers(0, 59)):02d}"]
    if draw(st.booleans()):
        parts.append(f"{draw(st.integers(0, 59)):02d}")
    return sep.join(parts)


@st.composite
def dates(draw: st.DrawFn) -> str:
    sep = draw(SEPARATOR)
    day, month = f"{draw(st.integers(1, 31)):02d}", f"{draw(st.integers(1, 12)):02d}"
    year = str(draw(st.integers(1990, 2039)))
    order = draw(st.sampled_from([(day, month, year), (year, month, day)]))
    text = sep.join(order)
    if draw(st.booleans()):  # with the time after it, as a camera burns it in
        text += " " + draw(clocks())
    return text


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    sep = draw(st.sampled_from(["", ".", " ", "-"]))
    head = draw(st.sampled_from(["09", "08", "03", "07", "1900", "1800", "028", "024"]))
    body = draw(digits(draw(st.integers(4, 8))))
    cut = draw(st.integers(0, len(body)))
    return f"{head}{sep}{body[:cut]}{sep if cut < len(body) else ''}{body[cut:]}"


WORD_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@st.composite
def signs(draw: st.DrawFn) -> str:
    """Shop signs and on-screen text: words of five or more letters, maybe a number."""
    word = draw(st.text(alphabet=WORD_LETTERS, min_size=5, max_size=10))
    extra = draw(st.sampled_from(["", " " + draw(digits(draw(st.integers(1, 4))))]))
    return draw(st.sampled_from([word + extra, extra.strip() + " " + word]))


def _unsure(text: str) -> list[list[CharRead]]:
    """The text as a recognizer would read it, every letter/digit with a look-alike as its
    runner-up (so a correction is as cheap as it gets)."""
    looks = {"0": "D", "1": "T", "2": "Z", "5": "S", "6": "G", "8": "B", "4": "A", "7": "T",
             "3": "B", "9": "P", "D": "0", "T": "1", "Z": "2", "S": "5", "G": "6", "B": "8",
             "A": "4", "O": "0", "I": "1", "L": "1", "Q": "0", "U": "0"}  # fmt: skip
    lines = []
    for part in text.split("/"):
        line = []
        for ch in part.strip():
            alts: FloatArray = np.zeros(len(ALNUM), np.float32)
            if ch in ALNUM:
                alts[ALNUM.index(ch)] = 0.55
                if ch in looks:
                    alts[ALNUM.index(looks[ch])] = 0.4
            line.append(CharRead(ch, float(alts.max()) if ch in ALNUM else 1.0, alts))
        lines.append(line)
    return [line for line in lines if line]


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(clocks(), dates(), phone_numbers(), signs()))
def test_clocks_dates_phone_numbers_and_signs_are_no_vietnamese_plate(text: str) -> None:
    assert VN.parse(text) is None, text
    assert VN.match(_unsure(text)) is None, text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("38.272727", "digits only: a phone number, one letter would be made up"),
        ("19006968", "a hotline"),
        ("00-313.92", "no province 00"),
        ("05A-0059", "no province 05"),
        ("3820-1234", "two series letters made up from digits"),
        ("OM-55-88", "no military command starts with O"),
        ("HONDA", "a word"),
        ("12:30 / 2023", "a clock over a year"),
    ],
)
def test_vn_rejects(text: str, why: str) -> None:
    assert VN.parse(text) is None, why


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("59-01 / 064.28", "59D106428"),  # a D read as 0, laid out exactly as a plate
        ("51F-I23.45", "51F12345"),  # an I in a digit slot
        ("KP / 47-14", "KP4714"),  # military, two lines
        ("13 / 527-HD", "13527HD"),  # the older motorbike layout
    ],
)
def test_vn_still_takes(text: str, plate: str) -> None:
    match = VN.parse(text)
    assert match is not None
    assert match.plate == plate


# -- pairing the two lines of a motorbike plate ------------------------------------------------


class _Boxes(TextDetector):
    """A detector that 'finds' the boxes it is given (frame pixels, scale 1)."""

    def __init__(self, boxes: Sequence[tuple[int, int, int, int]]) -> None:
        self.boxes = [
            TextBox(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32), 0.9)
            for x0, y0, x1, y1 in boxes
        ]

    def scale_for(self, image: Any) -> float:
        return 1.0

    def detect(self, image: Any) -> list[TextBox]:
        return list(self.boxes)


class _ByShade:
    """A recognizer that reads a crop by its mean grey: each line of the test frame is
    painted in its own shade."""

    def __init__(self, texts: dict[int, str]) -> None:
        self.texts = texts

    def read(self, crop: Any, *, narrow: bool = True) -> LineRead:
        shade = float(crop.mean())
        key = min(self.texts, key=lambda k: abs(k - shade))
        text = self.texts[key] if abs(key - shade) < 50 else ""
        chars = []
        for ch in text:
            alts: FloatArray = np.zeros(len(ALNUM), np.float32)
            if ch in ALNUM:
                alts[ALNUM.index(ch)] = 0.95
            chars.append(CharRead(ch, 0.95 if ch in ALNUM else 1.0, alts))
        return LineRead(tuple(chars))


TOP, BOTTOM = (200, 100, 260, 120), (195, 122, 265, 142)  # the two lines, frame pixels


def _frame() -> Any:
    image = np.full((300, 400, 3), 230, np.uint8)
    image[TOP[1] : TOP[3], TOP[0] : TOP[2]] = 60
    image[BOTTOM[1] : BOTTOM[3], BOTTOM[0] : BOTTOM[2]] = 140
    return image


@st.composite
def motorbike_plates(draw: st.DrawFn) -> tuple[str, str]:
    top = f"{draw(PROVINCE)}-{draw(letters(SERIES, 1))}{draw(letters('123456789', 1))}"
    five = draw(digits(5))
    return top, draw(st.sampled_from([f"{five[:3]}.{five[3:]}", five[:4]]))


@settings(max_examples=60, deadline=None)
@given(plate=motorbike_plates(), seen=st.sampled_from(["both", "bottom"]))
def test_the_two_lines_of_a_motorbike_plate_are_one_plate(
    plate: tuple[str, str], seen: str
) -> None:
    """Both lines detected, or only the bottom one (the short top line is often missed): the
    plate is top + bottom, never the bottom line alone, also with ``generic`` behind ``vn``."""
    top, bottom = plate
    boxes = [TOP, BOTTOM] if seen == "both" else [BOTTOM]
    for regions in (("vn",), ("vn", "generic")):
        pipeline = PlatePipeline(
            [_Boxes(boxes)],
            _ByShade({60: top, 140: bottom}),  # type: ignore[arg-type]
            PlateGrammar(regions),
        )
        results = pipeline.read_image(_frame())
        assert results, (top, bottom, regions)
        assert results[0].plate == _alnum(top + bottom)
        assert results[0].vehicle_type is VehicleType.MOTORBIKE


def test_a_bottom_line_alone_is_no_vietnamese_plate() -> None:
    pipeline = PlatePipeline(
        [_Boxes([BOTTOM])],
        _ByShade({140: "123.45"}),  # type: ignore[arg-type]
        PlateGrammar(("vn",)),
    )
    assert pipeline.read_image(_frame()) == []


# -- zoom tiles -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4])
def test_the_zoom_tiles_cover_the_frame_and_overlap(n: int) -> None:
    pipeline = PlatePipeline([_Boxes([])], _ByShade({}), VN, zoom_tiles=n)  # type: ignore[arg-type]
    tiles = pipeline.tiles((350, 460, 3))
    assert len(tiles) == n * n
    covered = np.zeros((350, 460), bool)
    for x0, y0, x1, y1 in tiles:
        assert 0 <= x0 < x1 <= 460 and 0 <= y0 < y1 <= 350
        assert (x1 - x0) < 460 and (y1 - y0) < 350  # each tile is zoomed in
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # neighbours overlap, so a plate cut by one tile's edge is whole in the next one
    xs = sorted({(t[0], t[2]) for t in tiles})
    assert all(b[0] < a[1] for a, b in itertools.pairwise(xs))


def test_zoom_tiles_look_only_where_nothing_was_found() -> None:
    calls: list[tuple[int, ...]] = []

    class Counting(_Boxes):
        def detect(self, image: Any) -> list[TextBox]:
            calls.append(image.shape)
            return super().detect(image)

    found = PlatePipeline(
        [Counting([TOP, BOTTOM])],
        _ByShade({60: "59-X1", 140: "123.45"}),  # type: ignore[arg-type]
        VN,
        zoom_tiles=2,
    )
    assert found.read_image(_frame())[0].plate == "59X112345"
    assert len(calls) == 1  # a plate in the first look: no tiles
    calls.clear()
    nothing = PlatePipeline(
        [Counting([])],
        _ByShade({}),  # type: ignore[arg-type]
        VN,
        zoom_tiles=2,
    )
    assert nothing.read_image(_frame()) == []
    assert len(calls) == 1 + 4  # the frame, then its four tiles


def test_zoom_tiles_in_the_lane_config() -> None:
    assert ReaderConfig().zoom_tiles == 0
    assert ReaderConfig(zoom_tiles=3).zoom_tiles == 3
    for bad in (1, -1, 5):
        with pytest.raises(ValidationError, match="zoom_tiles"):
            ReaderConfig(zoom_tiles=bad)


def test_the_role_offers_zoom_tiles_with_the_same_validation() -> None:
    specs = yaml.safe_load((REPO / "roles/edge/meta/argument_specs.yml").read_text())
    option = specs["argument_specs"]["main"]["options"]["edge_reader_zoom_tiles"]
    allowed = []
    for n in range(-1, 6):
        try:
            ReaderConfig(zoom_tiles=n)
            allowed.append(n)
        except ValidationError:
            pass
    assert option["choices"] == allowed
    defaults = yaml.safe_load((REPO / "roles/edge/defaults/main.yml").read_text())
    assert defaults["edge_reader_zoom_tiles"] == ReaderConfig().zoom_tiles
    template = (REPO / "roles/edge/templates/etc/parking-edge/edge.toml.j2").read_text()
    assert "zoom_tiles = {{ edge_reader_zoom_tiles" in template
    preflight = (REPO / "roles/edge/tasks/preflight.yml").read_text()
    assert f"edge_reader_zoom_tiles | int in {allowed}" in preflight


def test_zoom_tiles_reach_the_reader() -> None:
    cv2.setNumThreads(1)
    from app.edge.agent import open_reader
    from app.edge.config import EdgeConfig

    config = EdgeConfig.model_validate(
        {
            "camera": {"id": "gate-1-in", "direction": "entry", "api_key": "k"},
            "central": {"url": "http://127.0.0.1:8000"},
            "source": {"kind": "folder", "path": "/tmp"},
            "reader": {"kind": "litert", "zoom_tiles": 2},
        }
    )
    reader = open_reader(config)
    assert reader.pipeline.zoom_tiles == 2  # type: ignore[attr-defined]


# -- the real reader: a small motorbike plate, found by the zoom tiles -------------------------


def _motorbike_scene(width: int, seed: int) -> Any:
    """A drawn two-line motorbike plate (59-X1 / 123.45), ``width`` pixels wide, in a blurred
    noisy 460x350 frame (the size of the gallery photos the figures come from)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    h = 60
    plate = np.full((h, int(h * 1.3), 3), 245, np.uint8)
    for text, y in (("59-X1", int(h * 0.43)), ("123.45", int(h * 0.9))):
        (tw, _), _ = cv2.getTextSize(text, font, h / 70, 3)
        cv2.putText(plate, text, ((plate.shape[1] - tw) // 2, y), font, h / 70, (20, 20, 20), 3)
    cv2.rectangle(plate, (0, 0), (plate.shape[1] - 1, h - 1), (0, 0, 0), 2)
    rng = np.random.default_rng(seed)
    frame = cv2.GaussianBlur(
        np.clip(rng.normal(120, 25, (350, 460, 3)), 0, 255).astype(np.uint8), (7, 7), 0
    )
    ph = round(h * width / plate.shape[1])
    small = cv2.resize(plate, (width, ph), interpolation=cv2.INTER_AREA)
    x, y = int(rng.integers(60, 460 - width - 60)), int(rng.integers(120, 350 - ph - 20))
    frame[y : y + ph, x : x + width] = small
    return frame


def test_zoom_tiles_find_small_plates_the_first_look_misses() -> None:
    from app.edge.reader.litert import LiteRTPlateReader

    plain = LiteRTPlateReader(regions=["vn"])
    tiled = LiteRTPlateReader(regions=["vn"], zoom_tiles=2)
    found_plain: set[int] = set()
    found_tiled: set[int] = set()
    for seed in range(12):
        # 20 px wide: the 448x800 full-frame look reads none of these, the tiles 4 of 12 (at
        # 24 px the full-frame look reads 7)
        frame = _motorbike_scene(20, seed)
        for reader, found in ((plain, found_plain), (tiled, found_tiled)):
            results = reader.read_image(frame)
            if results and results[0].plate == "59X112345":
                found.add(seed)
    # the tiles look only where nothing was found: what the first look read stays read
    assert found_plain <= found_tiled
    assert len(found_tiled) >= len(found_plain) + 2, (found_plain, found_tiled)

"""Region profiles: every profile's formats round-trip, look-alikes change only slots a format
fixes, ``generic`` changes nothing; and the real reader on rendered EU and Brazilian plates."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.edge.reader.grammar import PlateGrammar
from app.edge.reader.litert import LiteRTPlateReader
from app.edge.reader.ocr import ALNUM, CharRead
from app.edge.reader.profiles import expand_template, get_profile, region_names
from support.render_plates import Plate, draw_plate, fill, scene

REPO = Path(__file__).resolve().parents[2]
FORMAT_REGIONS = [r for r in region_names() if get_profile(r).formats]
GRAMMARS = {r: PlateGrammar((r,)) for r in region_names()}
# a digit and the letter it is misread as (and back)
DIGIT_LOOKS = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G"}


def _read(text: str, unsure: dict[int, str] | None = None) -> list[CharRead]:
    """Certain characters; at ``unsure`` positions the read char with the true one as the
    recognizer's close second choice."""
    out = []
    for i, ch in enumerate(text):
        alts = np.zeros(len(ALNUM), np.float32)
        if ch in ALNUM:
            alts[ALNUM.index(ch)] = 0.6 if unsure and i in unsure else 0.99
        if unsure and i in unsure and unsure[i] in ALNUM:
            alts[ALNUM.index(unsure[i])] = 0.35
        out.append(CharRead(ch, float(alts.max()) if ch in ALNUM else 1.0, alts))
    return out


def test_the_shipped_profiles() -> None:
    assert set(region_names()) >= {"vn", "us", "br", "eu", "generic"}
    assert not get_profile("generic").formats
    eu = get_profile("eu")
    countries = {f.country for f in eu.formats}
    for code in [
        "DE",
        "FR",
        "IT",
        "ES",
        "NL",
        "BE",
        "PL",
        "CZ",
        "SK",
        "HR",
        "HU",
        "RO",
        "BG",
        "AT",
        "PT",
        "SE",
        "DK",
        "FI",
        "SI",
        "GR",
        "IE",
    ]:
        assert code in countries, code
    assert eu.bands["D"] == "DE"
    assert eu.bands["NL"] == "NL"
    # every format states its source: a comment in the data file names it
    text = (REPO / "app/edge/reader/plate_regions/eu.toml").read_text(encoding="utf-8")
    for block in text.split("[[countries]]")[1:]:
        assert re.search(r"^# .*\S", block, re.M), block[:40]


def test_templates_expand() -> None:
    assert expand_template("L{1,2}~9{1,2}") == ["L~9", "L~99", "LL~9", "LL~99"]
    assert expand_template("L{1,3}~L{1,2} 9{1,4}", 8)[-1] == "LLL~LL 999"
    with pytest.raises(ValueError, match="template"):
        expand_template("LQ9")


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_plate_of_any_format_of_a_profile_reads_back_unchanged(data: st.DataObject) -> None:
    region = data.draw(st.sampled_from(FORMAT_REGIONS))
    fmt = data.draw(st.sampled_from(get_profile(region).formats))
    text = fill(fmt, random.Random(data.draw(st.integers(0, 1 << 30)))).replace("~", " ")
    lines = [_read(part) for part in text.split("/")]
    match = GRAMMARS[region].match(lines)
    assert match is not None, (region, fmt.template, text)
    want = re.sub(r"[^A-Z0-9]", "", text)
    glyphs = get_profile(region).same_glyphs  # "O0" (us): one glyph, either spelling fits
    fold = str.maketrans(glyphs[1::2], glyphs[::2])
    assert match.plate.translate(fold) == want.translate(fold)
    assert match.corrections == 0 or glyphs
    assert match.grammar == region


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_look_alikes_change_only_slots_the_chosen_format_fixes(data: st.DataObject) -> None:
    region = data.draw(st.sampled_from(FORMAT_REGIONS))
    fmt = data.draw(st.sampled_from(get_profile(region).formats))
    text = fill(fmt, random.Random(data.draw(st.integers(0, 1 << 30))))
    text = text.replace("~", "").replace("/", "")
    digits = [i for i, c in enumerate(text) if c in DIGIT_LOOKS]
    if not digits:
        return
    i = data.draw(st.sampled_from(digits))
    misread = text[:i] + DIGIT_LOOKS[text[i]] + text[i + 1 :]
    match = GRAMMARS[region].match([_read(misread, {i: text[i]})])
    if match is None:
        assert get_profile(region).strict
        return
    read = re.sub(r"[^A-Z0-9]", "", misread)
    if len(match.plate) != len(read):
        assert match.corrections >= 1  # the doubtful character left out as a stray mark
        return
    if not match.template:
        assert match.plate == read  # fits no format: as read
        return
    slots = [c for c in match.template if c in "9AL*"]
    for got, was, slot in zip(match.plate, read, slots, strict=True):
        if got != was:
            assert slot in "9AL", (match.template, read, match.plate)
            assert got.isdigit() == (slot == "9")


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=ALNUM + "-.", min_size=1, max_size=10),
    unsure=st.dictionaries(st.integers(0, 9), st.sampled_from(ALNUM), max_size=3),
)
def test_generic_never_changes_a_character(text: str, unsure: dict[int, str]) -> None:
    match = GRAMMARS["generic"].match([_read(text, unsure)])
    if match is not None:
        assert match.plate == re.sub(r"[^A-Z0-9]", "", text)
        assert match.corrections == 0


@pytest.mark.parametrize(
    ("region", "read", "unsure", "plate"),
    [
        ("br", "ABC1D23", {}, "ABC1D23"),  # Mercosur as read
        ("br", "AB01D23", {2: "O"}, "ABO1D23"),  # a letter slot read as 0: O
        ("br", "ABCID23", {3: "1"}, "ABC1D23"),  # a digit slot read as I: 1
        ("eu", "AB-123-C0", {8: "D"}, "AB123CD"),  # FR has no O: 0 is a D there
        ("eu", "AB-I23-CD", {3: "1"}, "AB123CD"),  # a digit slot read as I: 1
    ],
)
def test_position_aware_correction(
    region: str, read: str, unsure: dict[int, str], plate: str
) -> None:
    match = GRAMMARS[region].match([_read(read, unsure)])
    assert match is not None
    assert match.plate == plate
    # the same read without layouts: as read
    generic = GRAMMARS["generic"].match([_read(read, unsure)])
    assert generic is not None
    assert generic.plate == re.sub(r"[^A-Z0-9]", "", read)


@pytest.mark.parametrize(
    ("region", "read", "plate"),
    [
        ("br", "K018M07", "KOI8M07"),  # Mercosur LLL9L99: two letter slots read as digits
        ("br", "000-8288", "OOO8288"),  # grey LLL-9999: three
        ("br", "PEG2120", "PEG2I20"),  # no dash: Mercosur, its 5th slot a letter
        ("br", "PEG-2120", "PEG2120"),  # the dash: the grey plate, as read
        ("eu", "K0P-6608", "KOP6608"),  # GR AAA-9999
        ("eu", "L0S-181", "LOS181"),  # BE LLL-999
    ],
)
def test_a_sure_misread_look_alike_takes_the_format_where_it_fixes_the_slot(
    region: str, read: str, plate: str
) -> None:
    """eu and br (``lookalike_cost``): a look-alike the recognizer was sure of (no second
    choice at all) is still corrected where the format fixes the slot; us keeps such a read
    as read (its layouts are not every plate's)."""
    match = GRAMMARS[region].parse(read)
    assert match is not None
    assert match.plate == plate
    assert get_profile(region).lookalike_cost is not None
    us = GRAMMARS["us"].parse("A8C-1234")
    assert us is not None and us.plate == "A8C1234" and not us.template


def test_a_recognizer_that_reads_no_separators_is_not_missing_the_dash() -> None:
    """fast-plate-ocr's slots never hold a dash: its ``MHD8338`` is the grey ``MHD-8338`` as
    read, where a line read without its dash is likelier the Mercosur ``MHD8B38``."""
    read = _read("MHD8338")
    slots = GRAMMARS["br"].match_all([read], separators=False)[0]
    assert (slots.plate, slots.template) == ("MHD8338", "LLL-9999")
    line = GRAMMARS["br"].match_all([read])[0]
    assert (line.plate, line.template) == ("MHD8B38", "LLL9L99")
    # vn (strict) still wants its dash: a slot read is no evidence of a Vietnamese plate
    vn = PlateGrammar(("vn",))
    for text in ("51F12345", "1BB8851"):
        slot_reads = vn.match_all([_read(text)], separators=False)
        assert [m.cost for m in slot_reads] == [m.cost for m in vn.match_all([_read(text)])]


def test_vn_rejects_what_is_no_vietnamese_plate() -> None:
    for text in ("BMW1234", "AB-123-CD", "ABC1D23", "7ABC123", "1234"):
        assert GRAMMARS["vn"].parse(text) is None, text


def test_the_band_prefers_its_countrys_formats_and_travels_with_the_read() -> None:
    # 9-AA-999 is Dutch sidecode 13 and Belgian 9-LLL-999 is one letter longer: here the band
    match = GRAMMARS["eu"].match([_read("12-TT-34")], band="NL")
    assert match is not None
    assert (match.plate, match.country, match.display) == ("12TT34", "NL", "12-TT-34")


def test_an_emblem_read_as_a_character_is_left_out() -> None:
    # a Croatian coat of arms read as an unsure "8" between the district and the number
    line = _read("ZG81234-AB", {2: "B"})
    match = GRAMMARS["eu"].match([line], band="HR")
    assert match is not None
    assert (match.plate, match.display) == ("ZG1234AB", "ZG 1234-AB")


def test_the_role_offers_the_shipped_profiles() -> None:
    specs = yaml.safe_load((REPO / "roles/edge/meta/argument_specs.yml").read_text())
    option = specs["argument_specs"]["main"]["options"]["edge_plate_regions"]
    assert sorted(option["choices"]) == sorted(region_names())
    defaults = yaml.safe_load((REPO / "roles/edge/defaults/main.yml").read_text())
    assert defaults["edge_plate_regions"] == ["vn", "generic"]


# -- the real reader on rendered plates ----------------------------------------------------


@pytest.fixture(scope="module")
def readers() -> dict[str, LiteRTPlateReader]:
    return {r: LiteRTPlateReader(regions=[r]) for r in ("eu", "br", "generic")}


@pytest.mark.parametrize(
    ("plate", "region", "want", "country"),
    [
        pytest.param(
            Plate("B~MW 1234", "DE", "D"),
            "eu",
            "BMW1234",
            "D",
            marks=pytest.mark.xfail(
                reason="in some scenes the seals are read as a sure 8 whose place the "
                "recognizer puts just outside the seals' colour (left in: B8MW1234)",
                strict=False,
            ),
        ),
        (Plate("M~AB 123", "DE", "D"), "eu", "MAB123", "D"),
        (Plate("XB-12-TT", "NL", "NL"), "eu", "XB12TT", "NL"),
        (Plate("AB-123-CD", "FR", "F"), "eu", "AB123CD", "F"),
        (Plate("WA 12345", "PL", "PL"), "eu", "WA12345", "PL"),
        (Plate("ZG~1234-AB", "HR", "HR"), "eu", "ZG1234AB", "HR"),
        (Plate("W~12345A", "AT", "A"), "eu", "W12345A", "A"),
        (Plate("ABC1D23", "BR", "", "br-mercosur"), "br", "ABC1D23", ""),
        (Plate("ABC-1234", "BR", "", "br-old"), "br", "ABC1234", ""),
    ],
)
def test_the_reader_reads_rendered_plates_through_their_profile(
    readers: dict[str, LiteRTPlateReader], plate: Plate, region: str, want: str, country: str
) -> None:
    # three scenes each (placement, size, blur): synthetic, not an accuracy figure (the bench
    # gives those); a small band code is sometimes misread, so two of three must be right
    reads = []
    for seed in (1, 2, 3):
        results = readers[region].read_image(scene(draw_plate(plate), random.Random(seed)))
        reads.append((results[0].plate, results[0].country) if results else None)
    assert reads.count((want, country)) >= 2, reads


def test_generic_keeps_the_seal_as_read(readers: dict[str, LiteRTPlateReader]) -> None:
    image = scene(draw_plate(Plate("B~MW 1234", "DE", "D")), random.Random(5))
    eu = readers["eu"].read_image(image)
    generic = readers["generic"].read_image(image)
    assert eu
    assert generic
    assert eu[0].plate == "BMW1234"
    # no layout, no band: the seal's read (if any) stays, and no country
    assert generic[0].country == ""
    assert generic[0].plate == generic[0].raw.replace("-", "").replace(" ", "")

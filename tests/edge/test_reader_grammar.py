"""The plate grammar, table-driven: valid layouts, invalid reads, look-alike correction."""

from __future__ import annotations

import numpy as np
import pytest

from app.contract import plate_match_key
from app.edge.reader.grammar import US_SAME_GLYPHS, US_TEMPLATES, PlateGrammar
from app.edge.reader.ocr import ALNUM, CharRead

VN = PlateGrammar(("vn",))
VN_FIRST = PlateGrammar(("vn", "generic"))
US = PlateGrammar(("generic",))


@pytest.mark.parametrize(
    ("text", "plate", "display"),
    [
        # cars, one line: 5-digit and older 4-digit numbers, one or two series letters
        ("51F-123.45", "51F12345", "51F-123.45"),
        ("30A-12345", "30A12345", "30A-123.45"),
        ("29A-1234", "29A1234", "29A-1234"),
        ("51LD-123.45", "51LD12345", "51LD-123.45"),
        # cars, two lines
        ("29C / 738.04", "29C73804", "29C 738.04"),
        ("51G / 1234", "51G1234", "51G 1234"),
        # motorbikes, two lines (also when read as one line)
        ("59-X1 / 123.45", "59X112345", "59-X1 123.45"),
        ("59-X1 123.45", "59X112345", "59-X1 123.45"),
        ("59-X1 / 1234", "59X11234", "59-X1 1234"),
        ("17-MD7 / 888.88", "17MD788888", "17-MD7 888.88"),
        ("29-AA / 123.45", "29AA12345", "29-AA 123.45"),
        # special series
        ("QA-12-34", "QA1234", "QA-12-34"),
        ("80-NG-123-45", "80NG12345", "80-NG-123-45"),
    ],
)
def test_valid_vietnamese_plates_read_as_is(text: str, plate: str, display: str) -> None:
    match = VN.parse(text)
    assert match is not None, text
    assert (match.plate, match.display, match.corrections) == (plate, display, 0)
    assert match.grammar == "vn"


@pytest.mark.parametrize(
    ("text", "plate", "display"),
    [
        ("5IF-123.45", "51F12345", "51F-123.45"),  # I -> 1 in a digit slot
        ("51F-I23.4S", "51F12345", "51F-123.45"),  # I -> 1, S -> 5
        ("5O8-123.45", "50B12345", "50B-123.45"),  # O -> 0 (digit), 8 -> B (series letter)
        ("S9-X1 / 1Z3.45", "59X112345", "59-X1 123.45"),  # S -> 5, Z -> 2
        ("59-01 / 064.28", "59D106428", "59-D1 064.28"),  # 0 -> D in the series
        ("30G-6G6.8B", "30G66688", "30G-666.88"),  # G -> 6 only where a digit belongs
        ("29-Z1 / 2O0.O0", "29Z120000", "29-Z1 200.00"),  # Z stays a letter in the series
    ],
)
def test_look_alikes_are_corrected_where_the_layout_fixes_the_kind(
    text: str, plate: str, display: str
) -> None:
    match = VN.parse(text)
    assert match is not None, text
    assert (match.plate, match.display) == (plate, display)
    assert match.corrections >= 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "51F",  # too short
        "ABCDEFGH",  # no layout
        "51F-123.456",  # one digit too many
        "5-123.45",
        "51W-123.45",  # W is no Vietnamese series letter, and no look-alike of a digit
        "XX-XX / XXX.XX",
    ],
)
def test_invalid_reads_are_no_vietnamese_plate(text: str) -> None:
    assert VN.parse(text) is None


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("6HP995", "6HP995"),
        ("0SG719", "0SG719"),  # US plates keep O and 0 as read: the layout does not say
        ("KCS1M", "KCS1M"),
        ("1AMW240", "1AMW240"),
        ("NEILDMND", "NEILDMND"),
    ],
)
def test_generic_patterns_take_letters_and_digits_as_read(text: str, plate: str) -> None:
    match = US.parse(text)
    assert match is not None
    assert (match.plate, match.grammar, match.corrections) == (plate, "generic", 0)


@pytest.mark.parametrize("text", ["ABC", "CALIFORNIA", "1234567890", "A"])
def test_generic_patterns_refuse_what_they_do_not_describe(text: str) -> None:
    assert US.parse(text) is None


def test_custom_generic_patterns() -> None:
    grammar = PlateGrammar(("generic",), generic_patterns=["[A-Z]{3}[0-9]{4}"])
    assert grammar.parse("ABC1234") is not None
    assert grammar.parse("AB12345") is None


@pytest.mark.parametrize(
    ("text", "plate", "grammar"),
    [
        ("51F-I23.45", "51F12345", "vn"),  # Vietnamese first: corrected
        ("1BB8851", "1BB8851", "generic"),  # a Czech plate is not forced into 18B-8851
        ("4B83940", "4B83940", "generic"),
        ("ZG4932-S", "ZG4932S", "generic"),
    ],
)
def test_deployment_order_prefers_vietnamese_but_does_not_force_it(
    text: str, plate: str, grammar: str
) -> None:
    match = VN_FIRST.parse(text)
    assert match is not None
    assert (match.plate, match.grammar) == (plate, grammar)


def _char(top: str, probs: dict[str, float]) -> CharRead:
    alts = np.zeros(len(ALNUM), np.float32)
    for ch, p in probs.items():
        if ch in ALNUM:
            alts[ALNUM.index(ch)] = p
    return CharRead(top, probs[top], alts)


def test_the_recognizers_own_second_choice_wins_over_the_table() -> None:
    # "Z" read in a digit slot; the model's second choice is 7, not the table's 2.
    line = [_char(c, {c: 0.99}) for c in "51F-"] + [_char("Z", {"Z": 0.6, "7": 0.35})]
    line += [_char(c, {c: 0.99}) for c in "23.45"]
    match = VN.match([line])
    assert match is not None
    assert match.plate == "51F72345"
    assert 0 < match.confidence < 1


def test_a_correction_the_model_rules_out_costs_more_than_one_it_found_likely() -> None:
    sure = _char("B", {"B": 0.999, "8": 0.0001})
    unsure = _char("B", {"B": 0.5, "8": 0.45})
    rest = [_char(c, {c: 0.99}) for c in "F-123.45"]
    five = _char("5", {"5": 0.99})
    likely = VN.match([[five, unsure, *rest]])
    unlikely = VN.match([[five, sure, *rest]])
    assert likely is not None
    assert unlikely is not None
    assert likely.plate == unlikely.plate == "58F12345"
    assert likely.cost < unlikely.cost


US_LAYOUTS = PlateGrammar(("generic",), generic_templates=US_TEMPLATES)


@pytest.mark.parametrize(
    ("text", "plate", "display"),
    [
        ("SHOR7X", "SHOR7X", "SHOR7X"),  # no layout fixes the O: it stays as read
        ("OSG719", "OSG719", "OSG719"),
        ("OAB-1234", "OAB1234", "OAB-1234"),  # a letter O read correctly is never a 0
        ("0AB-1234", "0AB1234", "0AB-1234"),
        ("6HP-995", "6HP995", "6HP-995"),
        ("812-T-475", "812T475", "812-T-475"),  # separators with letters: still a plate
    ],
)
def test_generic_plates_come_back_as_read_look_alikes_are_for_matching(
    text: str, plate: str, display: str
) -> None:
    for grammar in (US, US_LAYOUTS):
        match = grammar.parse(text)
        assert match is not None
        assert (match.plate, match.display) == (plate, display)
    if text.startswith("O"):  # the case, with the Vietnamese layouts tried first
        vn_first = VN_FIRST.parse(text)
        assert vn_first is not None
        assert vn_first.plate == plate
    # the look-alikes meet in the match key, edge and central alike
    assert plate_match_key(plate) == plate_match_key(plate.replace("O", "0"))


@pytest.mark.parametrize("text", ["2014-05-02", "12.05.2014", "314-845-5900", "07:34-825-1"])
def test_digits_split_in_three_are_a_date_or_a_phone_number_not_a_plate(text: str) -> None:
    assert US_LAYOUTS.parse(text) is None
    assert US.parse(text) is None


def test_a_stray_mark_the_recognizer_doubted_is_left_out_to_fit_a_layout() -> None:
    # "SL7-C6S" with an emblem between the halves read as a doubtful "E"
    line = [_char(c, {c: 0.98}) for c in "SL7"] + [_char("E", {"E": 0.4})]
    line += [_char(c, {c: 0.98}) for c in "C6S"]
    match = US_LAYOUTS.match([line])
    assert match is not None
    assert (match.plate, match.template, match.corrections) == ("SL7C6S", "LL9L9L", 1)
    # the same character read surely is kept: no layout, as read
    sure = [_char(c, {c: 0.98}) for c in "SL7EC6S"]
    kept = US_LAYOUTS.match([sure])
    assert kept is not None
    assert kept.plate == "SL7EC6S"


def test_one_glyph_pairs_help_a_layout_fit_but_never_rewrite_a_read_that_fits_none() -> None:
    one_glyph = PlateGrammar(
        ("generic",), generic_templates=US_TEMPLATES, same_glyphs=US_SAME_GLYPHS
    )
    # "HKOE7C": the O sits in LL9L9L's digit slot; the recognizer was sure of the O
    line = [_char(c, {c: 0.95}) for c in "HKOE7C"]
    plain = US_LAYOUTS.match([line])
    assert plain is not None
    assert plain.plate == "HKOE7C", "without the pair the O costs too much: as read"
    fitted = one_glyph.match([line])
    assert fitted is not None
    assert (fitted.plate, fitted.template) == ("HK0E7C", "LL9L9L")
    # the slot fixes the kind both ways: a 0 in a letter slot is an O (LLL9999)
    zero = one_glyph.match([[_char(c, {c: 0.95}) for c in "A0C1234"]])
    assert zero is not None
    assert zero.plate == "AOC1234"
    # no layout fixes the position: the read is returned as read (SHOR7X would fit LL9L9L)
    for text in ("OAB12", "0AB12", "ROOF1"):
        kept = one_glyph.match([[_char(c, {c: 0.95}) for c in text]])
        assert kept is not None
        assert kept.plate == text


def test_one_glyph_pairs_are_checked() -> None:
    with pytest.raises(ValueError, match="pairs"):
        PlateGrammar(("generic",), same_glyphs="O")


def test_grammar_names_are_checked() -> None:
    with pytest.raises(ValueError, match="regions"):
        PlateGrammar(("vn", "martian"))

"""Plate grammar: which strings are plates, how they are displayed, and look-alike correction.

A *template* describes one plate layout, slot by slot: ``9`` a digit, ``A`` a series letter,
``L`` any letter, ``*`` a letter or digit; ``-``, ``.`` and ``' '`` are separators shown in the
display form; ``/`` splits the two lines of a two-line plate. ``51F-123.45`` is
``99A-999.99``; ``59-X1 123.45`` is ``99-A9/999.99``.

Matching a read (one or two text lines, each character with the recognizer's probabilities)
against a template costs nothing where the character already has the slot's kind; a letter in
a digit slot (or the reverse) is replaced by its look-alike (O/0, I/1, B/8, D/0, S/5, Z/2,
G/6, ...) or by the recognizer's own best alternative of the right kind, at a cost of how much
less likely the model found it (capped). Separators and the line split that disagree with the
template cost a little too. The cheapest template wins; a grammar applies only below
``max_cost``.

Grammars come in a per-deployment order (``("vn", "generic")`` by default): the first one that
fits within ``accept_cost`` wins, so a Vietnamese layout is preferred (and corrected) before the
generic patterns take the read as it is.

Generic plates are regular expressions over the normalized text (letters and digits only),
e.g. the US default ``[A-Z0-9]{4,8}``; they do not correct characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.edge.reader.ocr import ALNUM, SEPARATORS, CharRead, FloatArray

# What a character is most often misread as, per kind of slot.
LOOKALIKE_DIGIT = {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "T": "1",
                   "J": "1", "B": "8", "S": "5", "Z": "2", "G": "6", "A": "4"}  # fmt: skip
LOOKALIKE_LETTER = {"0": "D", "1": "T", "8": "B", "5": "S", "2": "Z", "6": "G", "4": "A",
                    "7": "T", "3": "B"}  # fmt: skip

# Series letters on Vietnamese plates (no I, J, O, Q, W).
VN_LETTERS = "ABCDEFGHKLMNPRSTUVXYZ"

VN_TEMPLATES: tuple[str, ...] = (
    # cars, one line
    "99A-999.99",
    "99A-9999",
    "99AA-999.99",
    "99AA-9999",
    # cars, two lines
    "99A/999.99",
    "99A/9999",
    "99AA/999.99",
    "99AA/9999",
    # motorbikes, two lines (59-X1 123.45, 59-X1 1234, 29-AA 123.45, 17-MD7 888.88)
    "99-A9/999.99",
    "99-A9/9999",
    "99-AA/999.99",
    "99-AA/9999",
    "99-AA9/999.99",
    # special series: military / police (e.g. QA-12-34), diplomatic (80-NG-123-45)
    "LL-99-99",
    "99-AA-999-99",
)

US_GENERIC = ("[A-Z0-9]{4,8}",)
# Common US layouts (``L`` any letter): where a read fits one of these with a correction the
# recognizer itself found likely, the layout wins; otherwise the read stays as it was.
US_TEMPLATES = ("9LLL999", "LL9L9L", "LLL9999", "LLL999", "999LLL", "9LL9999")
# No character is ever written as another outside a slot that fixes its kind: look-alikes
# (O/0, I/1, ...) are one character for *matching* (``app.contract.plate_match_key``), never in
# the plate returned. Where a region prints two characters with one glyph (most US states: O
# and 0), the recognizer's choice between them says nothing, so a layout slot may take either
# at no cost (``same_glyphs``); a read that fits no layout keeps what was read.
US_SAME_GLYPHS = "O0"

_CORRECTION_CAP = 2.5  # cost of a look-alike substitution the model gave no weight at all
_SEPARATOR_COST = 0.6
_DASH_COST = 1.0
_MAX_LAYOUT_COST = 2.0  # separators and lines that disagree this much: another layout
_LINES_COST = 0.6
_DROP_COST = 0.5  # a read character left out as a stray mark, at least


@dataclass(frozen=True, slots=True)
class PlateMatch:
    plate: str  # normalized: letters and digits, lines in reading order
    display: str  # e.g. "51F-123.45", "59-X1 123.45", "6HP995"
    confidence: float  # 0..1
    cost: float  # 0 = read exactly as the template wants
    corrections: int
    grammar: str  # "vn" or "generic"
    template: str


def _alnum(lines: Sequence[Sequence[CharRead]]) -> list[tuple[CharRead, int, int]]:
    """Letters/digits with (line, index in line)."""
    return [
        (c, li, i) for li, line in enumerate(lines) for i, c in enumerate(line) if c.char in ALNUM
    ]


@dataclass(frozen=True, slots=True)
class _Slot:
    kind: str  # "9", "A" or "*"
    sep_before: str  # separator in the display before this slot ("" none, "/" line split)


def _parse_template(template: str) -> list[_Slot]:
    slots: list[_Slot] = []
    pending = ""
    for ch in template:
        if ch in "9AL*":
            slots.append(_Slot(ch, pending))
            pending = ""
        elif ch in "-. /":
            pending = "/" if ch == "/" or pending == "/" else ch
        else:
            raise ValueError(f"template {template!r}: unknown character {ch!r}")
    return slots


def _display(chars: Sequence[str], slots: Sequence[_Slot]) -> str:
    out = []
    for ch, slot in zip(chars, slots, strict=True):
        out.append(" " if slot.sep_before == "/" else slot.sep_before)
        out.append(ch)
    return "".join(out)


def _substitute(
    read: CharRead, allowed: str, lookalike: dict[str, str]
) -> tuple[str, float, float]:
    """Best character in ``allowed`` for this read: (char, cost, probability)."""
    if read.char in allowed:
        return read.char, 0.0, read.prob
    top = max(read.prob, 1e-6)
    best_char, best_p = "", 0.0
    if read.alts.size:
        for k, ch in enumerate(ALNUM):
            if ch in allowed and float(read.alts[k]) > best_p:
                best_char, best_p = ch, float(read.alts[k])
    look = lookalike.get(read.char)
    if look is not None and look in allowed:
        cost = (
            min(_CORRECTION_CAP, math.log(top / max(best_p, 1e-9))) if best_p else _CORRECTION_CAP
        )
        if best_char != look:
            look_p = float(read.alts[ALNUM.index(look)]) if read.alts.size else 0.0
            look_cost = min(_CORRECTION_CAP, math.log(top / max(look_p, 1e-9)))
            if look_cost <= cost or best_p < 0.05:
                return look, look_cost, max(look_p, top / 2)
        return best_char or look, cost, max(best_p, top / 2)
    if best_p >= 0.05:  # the model itself thought of it
        return best_char, math.log(top / best_p), best_p
    return "", math.inf, 0.0


class PlateGrammar:
    def __init__(
        self,
        grammars: Sequence[str] = ("vn", "generic"),
        *,
        generic_patterns: Sequence[str] = US_GENERIC,
        vn_templates: Sequence[str] = VN_TEMPLATES,
        generic_templates: Sequence[str] = (),
        same_glyphs: str = "",
        generic_max_separators: int = 1,
        template_accept_cost: float = 1.5,
        accept_cost: float = 3.0,
        max_cost: float = 5.5,
    ) -> None:
        unknown = set(grammars) - {"vn", "generic"}
        if unknown or not grammars:
            raise ValueError(f"grammars must be some of 'vn', 'generic', got {list(grammars)}")
        self.grammars = tuple(grammars)
        self.generic = [re.compile(p) for p in generic_patterns]
        self.vn = [(t, _parse_template(t)) for t in vn_templates]
        self.accept_cost = accept_cost
        self.max_cost = max_cost
        self.generic_templates = [(t, _parse_template(t)) for t in generic_templates]
        self.template_accept_cost = template_accept_cost
        if len(same_glyphs) % 2 or not set(same_glyphs) <= set(ALNUM):
            raise ValueError(f"same_glyphs must be pairs of letters/digits, got {same_glyphs!r}")
        self.same_glyphs = [
            (ALNUM.index(same_glyphs[k]), ALNUM.index(same_glyphs[k + 1]))
            for k in range(0, len(same_glyphs), 2)
        ]
        self.generic_max_separators = generic_max_separators

    # -- matching -------------------------------------------------------------------------

    def match(self, lines: Sequence[Sequence[CharRead]]) -> PlateMatch | None:
        """The best reading of one plate (one or two lines, top first), or None."""
        found = self.match_all(lines)
        return found[0] if found else None

    def match_all(self, lines: Sequence[Sequence[CharRead]]) -> list[PlateMatch]:
        """Every reading within ``max_cost``, best first.

        Best: the first grammar (in deployment order) whose cheapest reading costs at most
        ``accept_cost``; failing that the cheapest reading of any grammar.
        """
        fits: list[PlateMatch] = []
        first: PlateMatch | None = None
        for grammar in self.grammars:
            found = self._match_vn(lines) if grammar == "vn" else self._match_generic(lines)
            if found and first is None and found[0].cost <= self.accept_cost:
                first = found[0]
            fits += found
        fits.sort(key=lambda m: m.cost)
        if first is not None:
            fits.remove(first)
            fits.insert(0, first)
        return fits

    def parse(self, text: str) -> PlateMatch | None:
        """Match plain text (lines split by ``/`` or a newline), every character certain."""
        lines = [_certain(part.strip()) for part in re.split(r"\s*[/\n]\s*", text.upper())]
        return self.match([line for line in lines if line])

    def _match_vn(self, lines: Sequence[Sequence[CharRead]]) -> list[PlateMatch]:
        chars = _alnum(lines)
        found = [
            m
            for template, slots in self.vn
            if len(slots) == len(chars)
            and (m := self._fit(lines, chars, template, slots)) is not None
        ]
        return sorted(found, key=lambda m: m.cost)

    def _fit(
        self,
        lines: Sequence[Sequence[CharRead]],
        chars: list[tuple[CharRead, int, int]],
        template: str,
        slots: list[_Slot],
        grammar: str = "vn",
    ) -> PlateMatch | None:
        cost = 0.0
        corrections = 0
        out: list[str] = []
        probs: list[float] = []
        for (read, _, _), slot in zip(chars, slots, strict=True):
            if slot.kind == "9":
                ch, c, p = _substitute(read, "0123456789", LOOKALIKE_DIGIT)
            elif slot.kind in "AL":
                letters = VN_LETTERS if slot.kind == "A" else ALNUM[10:]
                ch, c, p = _substitute(read, letters, LOOKALIKE_LETTER)
            else:
                ch, c, p = read.char, 0.0, read.prob
            if not ch:
                return None
            corrections += ch != read.char
            cost += c
            out.append(ch)
            probs.append(p)
        layout = self._layout_cost(lines, chars, slots)
        cost += layout
        if layout > _MAX_LAYOUT_COST or cost > self.max_cost:
            return None
        return PlateMatch(
            plate="".join(out),
            display=_display(out, slots),
            confidence=_geomean(probs),
            cost=round(cost, 4),
            corrections=corrections,
            grammar=grammar,
            template=template,
        )

    @staticmethod
    def _layout_cost(
        lines: Sequence[Sequence[CharRead]],
        chars: list[tuple[CharRead, int, int]],
        slots: list[_Slot],
    ) -> float:
        cost = 0.0
        template_lines = 1 + sum(s.sep_before == "/" for s in slots)
        if template_lines != len(lines):
            cost += _LINES_COST
        for k in range(1, len(chars)):
            (_, line_a, idx_a), (_, line_b, idx_b) = chars[k - 1], chars[k]
            want = slots[k].sep_before
            if line_a != line_b:
                if want != "/":
                    cost += _LINES_COST
                continue
            between = {c.char for c in lines[line_a][idx_a + 1 : idx_b]}
            if want == "/":
                if len(lines) > 1:
                    cost += _LINES_COST
            elif not want:
                if between:
                    cost += _SEPARATOR_COST
            elif not between:
                # the dash is what sets a Vietnamese plate apart; dots are small, often missed
                cost += _DASH_COST if want == "-" else _SEPARATOR_COST / 2
        return cost

    def _match_generic(self, lines: Sequence[Sequence[CharRead]]) -> list[PlateMatch]:
        if any(
            sum(c.char in SEPARATORS for c in line[1:-1]) > self.generic_max_separators
            and not any(c.char.isalpha() for c in line)
            for line in lines
        ):
            return []  # digits split in three or more: a date, a time, a phone number
        chars = [c for c, _, _ in _alnum(lines)]
        plate = "".join(c.char for c in chars)
        as_read = self._generic_as_read(lines, chars, plate)
        # Layout templates first, only with corrections the recognizer found likely; a read
        # one character too long may hold a frame's or emblem's mark the recognizer was unsure
        # of: without it, it may fit a layout.
        fits = self._generic_templates(chars)
        if not fits and len(chars) > 1:
            for k in range(len(chars)):
                drop = _drop_cost(chars[k])
                if drop > self.template_accept_cost:
                    continue
                fits += [
                    replace(m, cost=round(m.cost + drop, 4), corrections=m.corrections + 1)
                    for m in self._generic_templates([*chars[:k], *chars[k + 1 :]])
                    if m.cost + drop <= self.template_accept_cost
                ]
            fits.sort(key=lambda m: m.cost)
        if fits:
            best = fits[0]
            if not best.corrections and as_read is not None:
                return [replace(as_read, template=best.template)]
            if as_read is not None:
                return [best, replace(as_read, cost=best.cost + 0.01)]
            return [best]
        return [as_read] if as_read is not None else []

    def _one_glyph(self, read: CharRead) -> CharRead:
        """For fitting layouts only: characters printed with one glyph are equally likely."""
        if not self.same_glyphs or not read.alts.size:
            return read
        alts = read.alts.copy()
        for a, b in self.same_glyphs:
            alts[a] = alts[b] = max(alts[a], alts[b])
        return replace(read, alts=alts)

    def _generic_templates(self, chars: Sequence[CharRead]) -> list[PlateMatch]:
        flat = [[self._one_glyph(c) for c in chars]]
        return sorted(
            (
                m
                for template, slots in self.generic_templates
                if len(slots) == len(chars)
                and (m := self._fit(flat, _alnum(flat), template, slots, "generic")) is not None
                and m.cost <= self.template_accept_cost
            ),
            key=lambda m: m.cost,
        )

    def _generic_as_read(
        self, lines: Sequence[Sequence[CharRead]], chars: Sequence[CharRead], plate: str
    ) -> PlateMatch | None:
        if not any(p.fullmatch(plate) for p in self.generic):
            return None
        display = " ".join(
            "".join(c.char for c in line).strip("-. ") for line in lines if line
        ).replace(".", "")
        display = re.sub(r"-+", "-", display)
        return PlateMatch(
            plate=plate,
            display=display or plate,
            confidence=_geomean([c.prob for c in chars]),
            cost=0.0,
            corrections=0,
            grammar="generic",
            template="",
        )


def _drop_cost(read: CharRead) -> float:
    """Cost of taking a read character for a stray mark: how sure the recognizer was of it."""
    p = min(max(read.prob, 1e-6), 1 - 1e-6)
    return _DROP_COST + max(0.0, math.log(p / (1 - p)))


def _geomean(probs: Sequence[float]) -> float:
    if not probs:
        return 0.0
    return float(np.exp(np.mean(np.log(np.clip(probs, 1e-6, 1.0)))))


def _certain(text: str) -> list[CharRead]:
    reads = []
    for ch in text:
        if ch.isspace():
            ch = " "
        alts: FloatArray = np.zeros(len(ALNUM), np.float32)
        if ch in ALNUM:
            alts[ALNUM.index(ch)] = 1.0
        reads.append(CharRead(ch, 1.0, alts))
    return reads

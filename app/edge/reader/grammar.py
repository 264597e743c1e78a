"""Plate grammar: which strings are plates, how they are displayed, and look-alike correction.

What a lane expects comes from its *region profiles* (``profiles``, data in
``plate_regions/*.toml``): ``vn``, ``us``, ``br``, ``eu``, ``generic``. A profile's formats are
*templates*, slot by slot: ``9`` a digit, ``A`` a letter the country uses there, ``L`` any
letter, ``*`` a letter or digit; ``-``, ``.`` and ``' '`` are separators shown in the display
form; ``~`` a gap where the plate carries an emblem (a mark read there is left out); ``/`` splits
the two lines of a two-line plate. ``51F-123.45`` is ``99A-999.99``; ``59-X1 123.45`` is
``99-A9/999.99``.

Matching a read (one or two text lines, each character with the recognizer's probabilities)
against a template costs nothing where the character already has the slot's kind; a letter in
a digit slot (or the reverse) is replaced by its look-alike (O/0, I/1, B/8, D/0, Q/0, S/5, Z/2,
G/6, ...) or by the recognizer's own best alternative of the right kind, at a cost of how much
less likely the model found it (capped). Characters are only ever changed in a slot whose kind
the format fixes. Separators and the line split that disagree with the template cost a little
too. The cheapest template wins.

Regions come in a per-deployment order (``("vn", "generic")`` by default): the first one that
fits within ``accept_cost`` wins. A *strict* profile (``vn``) takes only reads that fit one of
its formats (within ``max_cost``); the others take a format only with corrections the
recognizer found likely (``template_accept_cost``) and otherwise return the read as read when
it fits one of their patterns (e.g. ``[A-Z0-9]{4,8}``). ``generic`` has no formats: letters and
digits as read, never corrected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.edge.reader.ocr import ALNUM, SEPARATORS, CharRead, FloatArray
from app.edge.reader.profiles import PlateFormat, RegionProfile, get_profile

# What a character is most often misread as, per kind of slot (a digit read in a letter slot:
# the profile's ``letter_for_digit``, first letter the slot allows).
LOOKALIKE_DIGIT = {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "T": "1",
                   "J": "1", "B": "8", "S": "5", "Z": "2", "G": "6", "A": "4"}  # fmt: skip

# Series letters on Vietnamese plates (no I, J, O, Q, W): see plate_regions/vn.toml.
VN_LETTERS = "ABCDEFGHKLMNPRSTUVXYZ"
VN_TEMPLATES: tuple[str, ...] = tuple(f.template for f in get_profile("vn").formats)

US_GENERIC = ("[A-Z0-9]{4,8}",)
# The ``us`` profile's layouts (``L`` any letter): where a read fits one of these with a
# correction the recognizer itself found likely, the layout wins; otherwise the read stays.
US_TEMPLATES: tuple[str, ...] = tuple(f.template for f in get_profile("us").formats)
# No character is ever written as another outside a slot that fixes its kind: look-alikes
# (O/0, I/1, ...) are one character for *matching* (``app.contract.plate_match_key``), never in
# the plate returned. Where a region prints two characters with one glyph (most US states: O
# and 0), the recognizer's choice between them says nothing, so a layout slot may take either
# at no cost (``same_glyphs``); a read that fits no layout keeps what was read.
US_SAME_GLYPHS = get_profile("us").same_glyphs

_CORRECTION_CAP = 2.5  # cost of a look-alike substitution the model gave no weight at all
_SEPARATOR_COST = 0.6
_DASH_COST = 1.0
_MAX_LAYOUT_COST = 2.0  # separators and lines that disagree this much: another layout
_LINES_COST = 0.6
_DROP_COST = 0.5  # a read character left out as a stray mark, at least
_EMBLEM_COST = 0.25  # a read character left out where the format has an emblem ("~")
_OTHER_COUNTRY_COST = 0.3  # a format of another country than the band's


@dataclass(frozen=True, slots=True)
class PlateMatch:
    plate: str  # normalized: letters and digits, lines in reading order
    display: str  # e.g. "51F-123.45", "59-X1 123.45", "6HP995"
    confidence: float  # 0..1
    cost: float  # 0 = read exactly as the template wants
    corrections: int
    grammar: str  # the region profile: "vn", "us", "br", "eu" or "generic"
    template: str
    country: str = ""  # the EU band's code when one was seen (e.g. "D", "NL"), else ""


def _alnum(lines: Sequence[Sequence[CharRead]]) -> list[tuple[CharRead, int, int]]:
    """Letters/digits with (line, index in line)."""
    return [
        (c, li, i) for li, line in enumerate(lines) for i, c in enumerate(line) if c.char in ALNUM
    ]


@dataclass(frozen=True, slots=True)
class _Slot:
    kind: str  # "9", "A", "L" or "*"
    sep_before: str  # separator in the display before this slot ("" none, "/" line split)


def _parse_template(template: str) -> list[_Slot]:
    slots: list[_Slot] = []
    pending = ""
    for ch in template:
        if ch in "9AL*":
            slots.append(_Slot(ch, pending))
            pending = ""
        elif ch in "-. /~":
            pending = "/" if ch == "/" or pending == "/" else ch
        else:
            raise ValueError(f"template {template!r}: unknown character {ch!r}")
    return slots


def _display(chars: Sequence[str], slots: Sequence[_Slot]) -> str:
    out = []
    for ch, slot in zip(chars, slots, strict=True):
        out.append(" " if slot.sep_before in ("/", "~") else slot.sep_before)
        out.append(ch)
    return "".join(out)


def _substitute(
    read: CharRead, allowed: str, lookalike: dict[str, str], look_cap: float = _CORRECTION_CAP
) -> tuple[str, float, float]:
    """Best character in ``allowed`` for this read: (char, cost, probability). A look-alike
    costs at most ``look_cap`` (a profile's ``lookalike_cost``)."""
    if read.char in allowed:
        return read.char, 0.0, read.prob
    top = max(read.prob, 1e-6)
    best_char, best_p = "", 0.0
    if read.alts.size:
        for k, ch in enumerate(ALNUM):
            if ch in allowed and float(read.alts[k]) > best_p:
                best_char, best_p = ch, float(read.alts[k])
    look = next((c for c in lookalike.get(read.char, "") if c in allowed), None)
    if look is not None:
        cost = (
            min(_CORRECTION_CAP, math.log(top / max(best_p, 1e-9))) if best_p else _CORRECTION_CAP
        )
        look_p = float(read.alts[ALNUM.index(look)]) if read.alts.size else 0.0
        look_cost = min(_CORRECTION_CAP, look_cap, math.log(top / max(look_p, 1e-9)))
        if best_char == look or look_cost <= cost or best_p < 0.05:
            return look, look_cost, max(look_p, top / 2)
        return best_char, cost, max(best_p, top / 2)
    if best_p >= 0.05:  # the model itself thought of it
        return best_char, math.log(top / best_p), best_p
    return "", math.inf, 0.0


@dataclass(frozen=True, slots=True)
class _Format:
    template: str
    country: str
    letters: str
    slots: tuple[_Slot, ...]
    emblem: int  # index of the slot after an emblem gap ("~"), -1 none
    valid: re.Pattern[str] | None = None  # every plate of the format matches it


class _Region:
    """A profile ready for matching: its formats by number of slots."""

    def __init__(
        self,
        profile: RegionProfile,
        formats: Sequence[PlateFormat],
        patterns: Sequence[str],
        same_glyphs: str,
    ) -> None:
        self.name = profile.name
        self.strict = profile.strict
        self.display = profile.display
        self.bands = dict(profile.bands)
        self.letter_for_digit = profile.letter_for_digit
        self.max_guessed_letters = profile.max_guessed_letters
        self.guess_needs_layout = profile.guess_needs_layout
        self.max_guessed_digits = profile.max_guessed_digits
        self.lookalike_cost = (
            _CORRECTION_CAP if profile.lookalike_cost is None else profile.lookalike_cost
        )
        self.patterns = [re.compile(p) for p in patterns]
        if len(same_glyphs) % 2 or not set(same_glyphs) <= set(ALNUM):
            raise ValueError(f"same_glyphs must be pairs of letters/digits, got {same_glyphs!r}")
        self.same_glyphs = [
            (ALNUM.index(same_glyphs[k]), ALNUM.index(same_glyphs[k + 1]))
            for k in range(0, len(same_glyphs), 2)
        ]
        self.by_len: dict[int, list[_Format]] = {}
        for f in formats:
            slots = tuple(_parse_template(f.template))
            emblem = next((k for k, s in enumerate(slots) if s.sep_before == "~"), -1)
            valid = re.compile(f.valid) if f.valid else None
            fmt = _Format(f.template, f.country, f.letters, slots, emblem, valid)
            self.by_len.setdefault(len(slots), []).append(fmt)
        self.emblem_lens = {n for n, fs in self.by_len.items() if any(f.emblem > 0 for f in fs)}

    @property
    def templates(self) -> list[str]:
        return [f.template for fs in self.by_len.values() for f in fs]


class PlateGrammar:
    def __init__(
        self,
        regions: Sequence[str] = ("vn", "generic"),
        *,
        generic_patterns: Sequence[str] = US_GENERIC,
        generic_templates: Sequence[str] = (),
        same_glyphs: str = "",
        generic_max_separators: int = 1,
        template_accept_cost: float = 1.5,
        accept_cost: float = 3.0,
        max_cost: float = 5.5,
    ) -> None:
        """``regions``: profile names in order of preference. ``generic_patterns``,
        ``generic_templates`` and ``same_glyphs`` shape the ``generic`` profile only (the last
        two are the deprecated pre-profile settings: a ``generic`` with layouts)."""
        if not regions or len(set(regions)) != len(regions):
            raise ValueError(f"regions must be distinct profile names, got {list(regions)}")
        self.regions = tuple(regions)
        self._regions: list[_Region] = []
        for name in self.regions:
            profile = get_profile(name)
            if name == "generic":
                legacy = [PlateFormat(t, "", VN_LETTERS) for t in generic_templates]
                region = _Region(profile, legacy, generic_patterns, same_glyphs)
            else:
                region = _Region(profile, profile.formats, profile.patterns, profile.same_glyphs)
            self._regions.append(region)
        self.bands = {b: c for r in self._regions for b, c in r.bands.items()}
        self.accept_cost = accept_cost
        self.max_cost = max_cost
        self.template_accept_cost = template_accept_cost
        self.generic_max_separators = generic_max_separators

    @property
    def has_layouts(self) -> bool:
        """Whether a lenient region has formats (a read that fits one ranks first)."""
        return any(r.by_len and not r.strict for r in self._regions)

    @property
    def has_two_lines(self) -> bool:
        """Whether a region has two-line formats (a top line to look for)."""
        return any("/" in t for r in self._regions for t in r.templates)

    @property
    def generic_templates(self) -> list[str]:
        return [t for r in self._regions if r.name == "generic" for t in r.templates]

    # -- matching -------------------------------------------------------------------------

    def match(self, lines: Sequence[Sequence[CharRead]], band: str = "") -> PlateMatch | None:
        """The best reading of one plate (one or two lines, top first), or None."""
        found = self.match_all(lines, band)
        return found[0] if found else None

    def match_all(
        self, lines: Sequence[Sequence[CharRead]], band: str = "", *, separators: bool = True
    ) -> list[PlateMatch]:
        """Every reading within ``max_cost``, best first.

        Best: the first region (in deployment order) whose cheapest reading costs at most
        ``accept_cost``; failing that the cheapest reading of any region. ``band``: the code
        read in the plate's blue band (its formats are preferred; the reads carry it).
        ``separators=False``: the read comes from a recognizer that never reads separators
        (fast-plate-ocr's slots), so a lenient region's format does not miss its dash or gap
        there. A strict region (``vn``) still does: its dash is part of what tells a plate
        from other text, and a read that cannot show it gets no benefit of the doubt.
        """
        fits: list[PlateMatch] = []
        first: PlateMatch | None = None
        for region in self._regions:
            found = (
                self._match_strict(region, lines)
                if region.strict
                else self._match_lenient(region, lines, band, separators)
            )
            if band:
                found = [replace(m, country=band) for m in found]
            if found and first is None and found[0].cost <= self.accept_cost:
                first = found[0]
            fits += found
        fits.sort(key=lambda m: m.cost)
        if first is not None:
            fits.remove(first)
            fits.insert(0, first)
        return fits

    def parse(self, text: str, band: str = "") -> PlateMatch | None:
        """Match plain text (lines split by ``/`` or a newline), every character certain."""
        lines = [_certain(part.strip()) for part in re.split(r"\s*[/\n]\s*", text.upper())]
        return self.match([line for line in lines if line], band)

    def _match_strict(
        self, region: _Region, lines: Sequence[Sequence[CharRead]]
    ) -> list[PlateMatch]:
        chars = _alnum(lines)
        found = [
            m
            for fmt in region.by_len.get(len(chars), ())
            if (m := self._fit(lines, chars, fmt, region)) is not None
        ]
        return sorted(found, key=lambda m: m.cost)

    def _fit(
        self,
        lines: Sequence[Sequence[CharRead]],
        chars: list[tuple[CharRead, int, int]],
        fmt: _Format,
        region: _Region,
        separators: bool = True,
    ) -> PlateMatch | None:
        cost = 0.0
        corrections = 0
        out: list[str] = []
        probs: list[float] = []
        guessed = guessed_digits = 0
        for (read, _, _), slot in zip(chars, fmt.slots, strict=True):
            guessed += slot.kind in "AL" and read.char.isdigit()
            guessed_digits += slot.kind == "9" and read.char.isalpha()
            if slot.kind == "9":
                ch, c, p = _substitute(read, "0123456789", LOOKALIKE_DIGIT, region.lookalike_cost)
            elif slot.kind in "AL":
                letters = fmt.letters if slot.kind == "A" else ALNUM[10:]
                ch, c, p = _substitute(
                    read, letters, region.letter_for_digit, region.lookalike_cost
                )
            else:
                ch, c, p = read.char, 0.0, read.prob
            if not ch:
                return None
            corrections += ch != read.char
            cost += c
            out.append(ch)
            probs.append(p)
        if 0 <= region.max_guessed_letters < guessed or 0 <= region.max_guessed_digits < (
            guessed_digits
        ):
            return None  # letters made up from digits, or a word taken for digits
        if guessed and region.guess_needs_layout and not _same_layout(lines, chars, fmt.slots):
            return None  # a letter made up, and not laid out as a plate: a clock, a date, a
            # phone number (51D-544.01 read 510-54401 keeps its dash, and is taken)
        plate = "".join(out)
        if fmt.valid is not None and not fmt.valid.fullmatch(plate):
            return None  # e.g. no such province code
        layout = self._layout_cost(lines, chars, list(fmt.slots), separators)
        cost += layout
        if layout > _MAX_LAYOUT_COST or cost > self.max_cost:
            return None
        return PlateMatch(
            plate=plate,
            display=_display(out, fmt.slots),
            confidence=_geomean(probs),
            cost=round(cost, 4),
            corrections=corrections,
            grammar=region.name,
            template=fmt.template,
        )

    @staticmethod
    def _layout_cost(
        lines: Sequence[Sequence[CharRead]],
        chars: list[tuple[CharRead, int, int]],
        slots: list[_Slot],
        separators: bool = True,
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
            elif want in (" ", "~"):
                # a gap (or emblem) is read as nothing (or a space), or at most a stray dash
                if between - {" "}:
                    cost += _SEPARATOR_COST / 2
            elif not between and separators:
                # the dash is what sets a Vietnamese plate apart; dots are small, often missed
                cost += _DASH_COST if want == "-" else _SEPARATOR_COST / 2
        return cost

    def _match_lenient(
        self,
        region: _Region,
        lines: Sequence[Sequence[CharRead]],
        band: str,
        separators: bool = True,
    ) -> list[PlateMatch]:
        if any(
            sum(c.char in SEPARATORS for c in line[1:-1]) > self.generic_max_separators
            and not any(c.char.isalpha() for c in line)
            for line in lines
        ):
            return []  # digits split in three or more: a date, a time, a phone number
        chars = [c for c, _, _ in _alnum(lines)]
        plate = "".join(c.char for c in chars)
        as_read = self._as_read(region, lines, chars, plate)
        if not region.by_len:
            return [as_read] if as_read is not None else []
        # Formats first, only with corrections the recognizer found likely; a read one
        # character too long may hold a frame's or emblem's mark the recognizer was unsure
        # of (or any mark where the format has an emblem): without it, it may fit a format.
        country = region.bands.get(band, "")
        # "format" display: separators read count; "read" (us, generic): letters and digits
        # only, as one line (a layout there says nothing about dashes or lines)
        glyphs = (
            [[self._one_glyph(region, c) for c in line] for line in lines]
            if region.display == "format"
            else [[self._one_glyph(region, c) for c in chars]]
        )
        fits = self._format_fits(region, glyphs, country, separators)
        if not fits and len(chars) > 1:
            for k in range(len(chars)):
                drop = _drop_cost(chars[k])
                if drop > self.template_accept_cost:
                    continue
                fits += [
                    replace(m, cost=round(m.cost + drop, 4), corrections=m.corrections + 1)
                    for m in self._format_fits(region, _without(glyphs, [k]), country, separators)
                    if m.cost + drop <= self.template_accept_cost
                ]
            fits.sort(key=lambda m: m.cost)
        if fits:
            best = fits[0]
            if not best.corrections and as_read is not None and region.display == "read":
                return [replace(as_read, template=best.template)]
            if as_read is not None and as_read.plate != best.plate:
                return [best, replace(as_read, cost=best.cost + 0.01)]
            return [best]
        return [as_read] if as_read is not None else []

    def _one_glyph(self, region: _Region, read: CharRead) -> CharRead:
        """For fitting layouts only: characters printed with one glyph are equally likely."""
        if not region.same_glyphs or not read.alts.size:
            return read
        alts = read.alts.copy()
        for a, b in region.same_glyphs:
            alts[a] = alts[b] = max(alts[a], alts[b])
        return replace(read, alts=alts)

    def _format_fits(
        self,
        region: _Region,
        lines: list[list[CharRead]],
        country: str,
        separators: bool = True,
    ) -> list[PlateMatch]:
        n = sum(c.char in ALNUM for line in lines for c in line)
        tries: list[tuple[list[list[CharRead]], _Format, float, int]] = [
            (lines, f, 0.0, 0) for f in region.by_len.get(n, ())
        ]
        # emblems read as one or two characters: left out where the format has its gap
        for extra in (1, 2):
            if n - extra not in region.emblem_lens:
                continue
            for f in region.by_len[n - extra]:
                if f.emblem > 0:
                    gone = range(f.emblem, f.emblem + extra)
                    kept = _without(lines, gone)
                    marks = [c for line in lines for c in line if c.char in ALNUM]
                    cost = sum(_emblem_cost(marks[k]) for k in gone)
                    tries.append((kept, f, cost, extra))
        found = []
        for reads, f, extra_cost, dropped in tries:
            if country and f.country != country:
                extra_cost += _OTHER_COUNTRY_COST
            m = self._fit(reads, _alnum(reads), f, region, separators)
            if m is not None and m.cost + extra_cost <= self.template_accept_cost:
                found.append(
                    replace(
                        m,
                        cost=round(m.cost + extra_cost, 4),
                        corrections=m.corrections + dropped,
                    )
                )
        return sorted(found, key=lambda m: m.cost)

    def _as_read(
        self,
        region: _Region,
        lines: Sequence[Sequence[CharRead]],
        chars: Sequence[CharRead],
        plate: str,
    ) -> PlateMatch | None:
        if not any(p.fullmatch(plate) for p in region.patterns):
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
            grammar=region.name,
            template="",
        )


def candidate_rank(
    grammar: PlateGrammar, match: PlateMatch, height: float, votes: int = 1
) -> tuple[float, ...]:
    """How a reader chooses among candidate plates, lower first (the TFLite pipeline and the
    plate-models reader share it): the deployment's earlier region, then a read holding a
    digit, then (with layouts configured) a read that fits one, then the plate more reads
    agree on (``votes``: the plate-models reader reads each plate several times; the TFLite
    pipeline once), then the tallest (``height``: pixels per text line), surest, up to 7
    characters longest print."""
    off_layout = grammar.has_layouts and not match.template
    return (
        float(grammar.regions.index(match.grammar)),
        0.0 if any(ch.isdigit() for ch in match.plate) else 1.0,
        1.0 if off_layout else 0.0,
        -float(votes),
        -height * match.confidence * min(len(match.plate), 7),
    )


def _same_layout(
    lines: Sequence[Sequence[CharRead]],
    chars: list[tuple[CharRead, int, int]],
    slots: Sequence[_Slot],
) -> bool:
    """Whether the read has the format's lines and dashes, and no separator where the format
    has none (a dot may be missing: it is small print)."""
    if 1 + sum(s.sep_before == "/" for s in slots) != len(lines):
        return False
    for k in range(1, len(chars)):
        (_, line_a, idx_a), (_, line_b, idx_b) = chars[k - 1], chars[k]
        want = slots[k].sep_before
        if (line_a != line_b) != (want == "/"):
            return False
        if line_a == line_b:
            between = "".join(c.char for c in lines[line_a][idx_a + 1 : idx_b]).strip()
            if between not in {"-": ("-",), ".": (".", "")}.get(want, ("",)):
                return False
    return True


def _without(lines: Sequence[Sequence[CharRead]], drop: Sequence[int]) -> list[list[CharRead]]:
    """The lines without their ``drop``-th letters/digits (counted over all lines)."""
    out: list[list[CharRead]] = []
    k = 0
    for line in lines:
        kept = []
        for c in line:
            if c.char in ALNUM:
                k += 1
                if k - 1 in drop:
                    continue
            kept.append(c)
        out.append(kept)
    return out


def _emblem_cost(read: CharRead) -> float:
    """Cost of taking a read character for an emblem where the format has one: less than a
    stray mark anywhere, still more the surer the recognizer was of it."""
    p = min(max(read.prob, 1e-6), 1 - 1e-6)
    return _EMBLEM_COST + 0.5 * max(0.0, math.log(p / (1 - p)))


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

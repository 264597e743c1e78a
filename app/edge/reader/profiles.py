"""Region profiles: which plate formats a lane expects, as data (``plate_regions/*.toml``).

A profile lists countries; each country has its formats (templates, see ``grammar``), the
letters it never uses, and the code printed in its blue EU band (if any). ``strict`` profiles
(``vn``) reject every read that fits no format; the others return such a read as read when it
fits one of their ``patterns``. ``generic`` has no formats at all: no layout, no correction.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PROFILES_DIR = Path(__file__).with_name("plate_regions")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# A digit read in a letter slot: the letters it is taken for, first one the slot allows.
LETTER_FOR_DIGIT = {"0": "ODQ", "1": "IT", "8": "B", "5": "S", "2": "Z", "6": "G", "4": "A",
                    "7": "T", "3": "B"}  # fmt: skip
_REPEAT = re.compile(r"([9AL*])\{(\d+)(?:,(\d+))?\}")
_TEMPLATE = re.compile(r"^[9AL*][9AL* .\-/~]*$")


@dataclass(frozen=True, slots=True)
class PlateFormat:
    template: str  # one layout, repetitions expanded (e.g. "L~LL 9999")
    country: str  # e.g. "DE"; "" for none
    letters: str  # the letters an "A" slot takes
    valid: str = ""  # a regular expression every plate of it matches (letters and digits)


@dataclass(frozen=True, slots=True)
class RegionProfile:
    name: str
    description: str = ""
    strict: bool = False
    display: str = "read"  # "format": the format's separators; "read": as read
    patterns: tuple[str, ...] = ("[A-Z0-9]{4,8}",)
    same_glyphs: str = ""
    formats: tuple[PlateFormat, ...] = ()
    bands: dict[str, str] = field(default_factory=dict)  # band code -> country
    letter_for_digit: dict[str, str] = field(default_factory=lambda: dict(LETTER_FOR_DIGIT))
    # How many letter slots a digit read there may fill (a guessed series letter; -1 no
    # limit), and whether such a guess needs the read laid out as the format (its lines and
    # dashes: digits laid out otherwise are a clock, a date or a phone number, not a plate).
    max_guessed_letters: int = -1
    guess_needs_layout: bool = False
    max_guessed_digits: int = -1  # digit slots a letter read there may fill (-1 no limit)
    # The most a look-alike correction (O/0, I/1, B/8, ...) costs in a slot the format fixes
    # as a letter or a digit (None: how much less likely the recognizer found it, capped as
    # in ``grammar``). Where every format fixes its positions (eu, br) a look-alike there is
    # the likely reading, however sure the recognizer was of the other glyph.
    lookalike_cost: float | None = None


def expand_template(template: str, max_chars: int | None = None) -> list[str]:
    """``L{1,3}~L{1,2} 9{1,4}`` -> every layout it stands for (at most ``max_chars`` slots)."""
    if not _TEMPLATE.fullmatch(_REPEAT.sub(r"\1", template)):
        raise ValueError(f"template {template!r}: only 9 A L * - . space / ~ and {{m,n}}")
    parts = _REPEAT.split(template)
    # parts: text, slot, min, max, text, slot, min, max, ..., text
    choices: list[list[str]] = []
    for k in range(0, len(parts), 4):
        choices.append([parts[k]])
        if k + 1 < len(parts):
            slot, low = parts[k + 1], int(parts[k + 2])
            high = int(parts[k + 3]) if parts[k + 3] else low
            if not 0 < low <= high <= 12:
                raise ValueError(f"template {template!r}: bad repetition")
            choices.append([slot * n for n in range(low, high + 1)])
    out = []
    for combo in itertools.product(*choices):
        t = "".join(combo)
        if max_chars is None or sum(ch in "9AL*" for ch in t) <= max_chars:
            out.append(t)
    return out


def _country_formats(country: dict[str, Any], name: str) -> list[PlateFormat]:
    code = str(country.get("code", ""))
    never = str(country.get("never", ""))
    if not set(never) <= set(LETTERS):
        raise ValueError(f"region {name}, {code}: never must be letters A-Z")
    letters = "".join(c for c in LETTERS if c not in never)
    valid = str(country.get("valid", ""))
    try:
        re.compile(valid)
    except re.error as exc:
        raise ValueError(f"region {name}, {code}: valid is no regular expression: {exc}") from None
    out = []
    for entry in country.get("formats", []):
        if isinstance(entry, str):
            template, most = entry, None
        else:
            template, most = str(entry["template"]), entry.get("max")
        out += [PlateFormat(t, code, letters, valid) for t in expand_template(template, most)]
    return out


def load_profile(path: Path) -> RegionProfile:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    name = str(data.get("name", path.stem))
    if name != path.stem:
        raise ValueError(f"{path}: name {name!r} differs from the file name")
    formats: list[PlateFormat] = []
    bands: dict[str, str] = {}
    for country in data.get("countries", []):
        formats += _country_formats(country, name)
        if country.get("band"):
            bands[str(country["band"])] = str(country.get("code", ""))
    look = dict(LETTER_FOR_DIGIT)
    look.update({str(k): str(v) for k, v in data.get("letter_for_digit", {}).items()})
    display = str(data.get("display", "read"))
    if display not in ("read", "format"):
        raise ValueError(f"{path}: display must be 'read' or 'format'")
    patterns = tuple(str(p) for p in data.get("patterns", ["[A-Z0-9]{4,8}"]))
    for p in patterns:
        re.compile(p)
    return RegionProfile(
        name=name,
        description=str(data.get("description", "")),
        strict=bool(data.get("strict", False)),
        display=display,
        patterns=patterns,
        same_glyphs=str(data.get("same_glyphs", "")),
        formats=tuple(formats),
        bands=bands,
        letter_for_digit=look,
        max_guessed_letters=int(data.get("max_guessed_letters", -1)),
        guess_needs_layout=bool(data.get("guess_needs_layout", False)),
        max_guessed_digits=int(data.get("max_guessed_digits", -1)),
        lookalike_cost=(
            float(data["lookalike_cost"]) if data.get("lookalike_cost") is not None else None
        ),
    )


@cache
def region_names() -> tuple[str, ...]:
    """The profiles shipped (file names of ``plate_regions/*.toml``), sorted."""
    return tuple(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))


@cache
def get_profile(name: str) -> RegionProfile:
    if name not in region_names():
        raise ValueError(f"regions must be some of {', '.join(region_names())}; got {name!r}")
    return load_profile(PROFILES_DIR / f"{name}.toml")

"""Plate similarity used to match an exit read to the entry it belongs to.

Plates are compared on their match keys (``app.contract.plate_match_key``): look-alike
characters (O/0, I/1, B/8, ...) are one character for matching, never in what is stored.
"""

from __future__ import annotations

from app.contract import plate_match_key


def within_one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by at most one substitution, insertion or deletion."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def plates_match(a: str, b: str) -> bool:
    """The same plate, up to look-alike characters and separators."""
    return plate_match_key(a) == plate_match_key(b)


def plates_near(a: str, b: str) -> bool:
    """Within one character of each other, comparing match keys (look-alikes are not an edit)."""
    return within_one_edit(plate_match_key(a), plate_match_key(b))

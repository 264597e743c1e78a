from __future__ import annotations

import pytest

from app.central.sessions.matching import within_one_edit


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("51F12345", "51F12345", True),
        ("51F12345", "51F12845", True),  # substitution
        ("51F12345", "51F1234", True),  # deletion at the end
        ("51F12345", "5F12345", True),  # deletion inside
        ("51F12345", "51FA12345", True),  # insertion
        ("51F12345", "51F12388", False),  # two substitutions
        ("51F12345", "51F123", False),  # two deletions
        ("", "A", True),
        ("AB", "BA", False),  # a transposition is two edits
    ],
)
def test_within_one_edit(a: str, b: str, expected: bool) -> None:
    assert within_one_edit(a, b) is expected
    assert within_one_edit(b, a) is expected

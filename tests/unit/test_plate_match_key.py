"""Look-alike characters are one for matching (``plate_match_key``), never in stored plates."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app.central.sessions.matching import plates_match, plates_near, within_one_edit
from app.contract import PLATE_LOOKALIKES, normalize_plate, plate_match_key

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# every group of characters the key treats as one: {O, D, Q, 0}, {I, 1}, {B, 8}, ...
GROUPS = {d: {d, *(c for c, k in PLATE_LOOKALIKES.items() if k == d)} for d in "0123456789"}
plates = st.text(alphabet=ALNUM + "-. ", min_size=1, max_size=12)


def _swap(plate: str, picks: list[int]) -> str:
    """``plate`` with some look-alikes written as another of their group."""
    out = []
    for k, ch in enumerate(plate):
        group = sorted(GROUPS.get(PLATE_LOOKALIKES.get(ch, ch), {ch}))
        out.append(group[picks[k % len(picks)] % len(group)] if picks else ch)
    return "".join(out)


@given(plates, st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=12))
def test_match_key_is_invariant_under_look_alike_substitution(plate: str, picks: list[int]) -> None:
    other = _swap(plate, picks)
    assert plate_match_key(other) == plate_match_key(plate)
    assert plates_match(plate, other)
    assert plates_near(plate, other)


@given(plates)
def test_match_key_is_idempotent_and_keeps_the_plate_length(plate: str) -> None:
    key = plate_match_key(plate)
    assert plate_match_key(key) == key
    assert len(key) == len(normalize_plate(plate))
    assert not set(key) & set(PLATE_LOOKALIKES)


@given(plates, plates)
def test_near_is_within_one_edit_of_the_keys(a: str, b: str) -> None:
    assert plates_near(a, b) is within_one_edit(plate_match_key(a), plate_match_key(b))
    assert plates_near(a, b) is plates_near(b, a)


def test_the_issue_cases() -> None:
    assert plate_match_key("OAB-1234") == plate_match_key("0AB1234") == "0A81234"
    assert plates_match("51F-123.45", "5IF12345")
    assert plates_near("0AB1234", "OA81235")  # look-alikes, then one real edit
    assert not plates_near("0AB1234", "OA81299")
    assert not plates_match("51F12345", "51E12345")  # E and F are no look-alikes
    # normalization is unchanged: the stored form keeps the letters as read
    assert normalize_plate("OAB-1234") == "OAB1234"


@given(plates.filter(lambda p: len(normalize_plate(p)) >= 2), st.lists(st.integers(0, 3)))
def test_the_edge_lists_find_a_listed_plate_in_any_look_alike_spelling(
    plate: str, picks: list[int]
) -> None:
    from app.contract import EdgeLists, GateAction, ListedPlate
    from app.edge.lists import LocalLists

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        lists = LocalLists(Path(folder))
        lists.replace(
            EdgeLists(
                lot_id="lot", camera_id="in", generated_at=now,
                allow=[ListedPlate(plate_normalized=normalize_plate(plate))], deny=[], passes=[],
            ),
            '"v1"',
        )  # fmt: skip
        found = lists.decide(_swap(plate, picks), now)
        assert found is not None
        assert found.action == GateAction.OPEN

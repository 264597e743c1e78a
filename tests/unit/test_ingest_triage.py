"""The pure steps of ingest (events/service.py): ``triage`` sorts a batch's events and
``resolve_repeats`` answers the repeats, as properties over random batches: ids used by several
cameras, stored answers, refused capture times and repeats in any mix, checked against a
plain reading of the rules, event by event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.central.core.identity import CameraIdentity
from app.central.errors import Conflict, InvalidInput
from app.central.events.service import (
    Ingested,
    IngestPolicy,
    Item,
    Repeat,
    Result,
    Verdict,
    owns,
    resolve_repeats,
    triage,
)
from app.contract import PlateEvent

NOW = datetime.now(UTC).replace(microsecond=0)
POLICY = IngestPolicy(low_confidence=0.6, timezone="UTC")
CAMERAS = [
    CameraIdentity("lane-a", "lot", "entry", NOW - timedelta(days=90)),
    CameraIdentity("lane-b", "lot", "exit", NOW - timedelta(days=10)),  # registered lately
]
IDS = [uuid.UUID(int=n + 1) for n in range(4)]  # few ids: repeats and clashes are common
AGES = [
    timedelta(minutes=5),  # fine
    timedelta(days=12),  # before lane-b was registered (beyond the slack), fine for lane-a
    timedelta(days=31),  # older than the retention: refused for both
]


def _event(event_id: uuid.UUID, camera_id: str, age: timedelta) -> PlateEvent:
    return PlateEvent.model_validate(
        {
            "event_id": str(event_id),
            "camera_id": camera_id,
            "captured_at": (NOW - age).isoformat(),
            "plate": "51F12345",
            "confidence": 0.9,
            "vehicle_type": "car",
        }
    )


ITEMS = st.lists(
    st.tuples(
        st.sampled_from(CAMERAS),
        st.sampled_from(IDS),
        st.sampled_from(["lane-a", "lane-b"]),
        st.sampled_from(AGES),
    ).map(lambda t: (t[0], _event(t[1], t[2], t[3]))),
    max_size=12,
)
STORED = st.dictionaries(
    st.sampled_from(IDS),
    st.sampled_from(["lane-a", "lane-b"]).map(lambda c: (c, {"stored": c})),
    max_size=3,
)


def _expected(items: list[Item], stored: dict[uuid.UUID, Any]) -> list[str]:
    """The rules, read plainly: what each event should be, as a short label."""
    labels: list[str] = []
    new: dict[uuid.UUID, tuple[int, str]] = {}
    for i, (camera, event) in enumerate(items):
        at = event.captured_at
        registered = camera.registered_at
        assert registered is not None
        if event.camera_id != camera.id:
            labels.append("not_owner")
        elif event.event_id in stored:
            labels.append("replay" if stored[event.event_id][0] == camera.id else "used")
        elif at < NOW - POLICY.max_event_age or at < registered - timedelta(days=1):
            labels.append("wrong_time")
        elif event.event_id in new:
            first, owner = new[event.event_id]
            labels.append(f"repeat:{first}:{owner == camera.id}")
        else:
            new[event.event_id] = (i, camera.id)
            labels.append("new")
    return labels


def _label(verdict: Verdict) -> str:
    if verdict is None:
        return "new"
    if isinstance(verdict, Repeat):
        return f"repeat:{verdict.first}:{verdict.same_camera}"
    if isinstance(verdict, Ingested):
        assert verdict.replay
        return "replay"
    if isinstance(verdict, Conflict):
        return {"camera_id": "not_owner", "event_id": "used"}[str(verdict.field)]
    assert isinstance(verdict, InvalidInput)
    assert verdict.field == "captured_at"
    return "wrong_time"


@given(items=ITEMS, stored=STORED)
def test_triage_sorts_each_event_by_the_rules_in_order(
    items: list[Item], stored: dict[uuid.UUID, tuple[str, dict[str, Any]]]
) -> None:
    verdicts = triage(items, stored=stored, now=NOW, policy=POLICY)
    assert [_label(v) for v in verdicts] == _expected(items, stored)
    for (camera, event), verdict in zip(items, verdicts, strict=True):
        if isinstance(verdict, Ingested):  # a replay is the stored answer, unchanged
            assert verdict.ack is stored[event.event_id][1]
        if verdict is None:
            assert owns(camera, event)
    new_ids = [e.event_id for (_, e), v in zip(items, verdicts, strict=True) if v is None]
    assert len(new_ids) == len(set(new_ids))  # the ledger decides each id once


@given(items=ITEMS, stored=STORED)
def test_repeats_get_their_firsts_answer_and_nothing_else_changes(
    items: list[Item], stored: dict[uuid.UUID, tuple[str, dict[str, Any]]]
) -> None:
    verdicts = triage(items, stored=stored, now=NOW, policy=POLICY)
    decided: list[Result | Repeat] = [
        Ingested({"decided": i}, replay=False) if v is None else v for i, v in enumerate(verdicts)
    ]
    done = resolve_repeats(decided, items)
    assert len(done) == len(items)
    for (_, event), before, after in zip(items, decided, done, strict=True):
        if not isinstance(before, Repeat):
            assert after is before
        elif before.same_camera:
            assert isinstance(after, Ingested) and after.replay
            assert after.ack == {"decided": before.first}
            assert items[before.first][1].event_id == event.event_id
        else:
            assert isinstance(after, Conflict) and after.field == "event_id"


@given(camera=st.sampled_from(CAMERAS), sender=st.sampled_from(["lane-a", "lane-b"]))
def test_owns_is_the_camera_id_rule(camera: CameraIdentity, sender: str) -> None:
    event = _event(IDS[0], sender, AGES[0])
    assert owns(camera, event) == (sender == camera.id)

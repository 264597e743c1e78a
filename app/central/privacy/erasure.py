"""Erasing one plate's history (issue 19): on request, everything central keeps about a plate
goes or is anonymised, in one transaction.

The plate is matched as exit matching matches it (``app.contract.plate_match_key``): every
plate that reads as the same one with look-alikes (O/D/Q-0, I-1, B-8, S-5, Z-2, G-6) is
erased with it. Sessions keep their times and amounts (accounting) with the plate replaced by
``ERASED``; events keep their times, the plate text and the reader's candidates go, their
snapshots are deleted; anomalies and offline gate decisions of those events lose the plate;
list entries and passes for it are deleted; earlier audit entries naming it lose the plate.
The erasure itself is audited with a keyed hash of the match key, never the plate.

Refused (409) while the plate has an open session: the vehicle is in the lot and its exit
needs the session (matching, fee). Erase after it left, or close/void the session first.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.central.audit import service as audit
from app.central.audit.models import AuditEntry
from app.central.commands.models import LaneCommand
from app.central.core.events import PlateEvent, Snapshot
from app.central.edgesync.models import OfflineGateDecision
from app.central.errors import Conflict, InvalidInput
from app.central.lists.models import ListEntry, Subscription
from app.central.privacy.retention import ERASED_DISPLAY, ERASED_KEY, count_rows
from app.central.sessions.models import Anomaly, ParkingSession
from app.contract import PLATE_LOOKALIKES, plate_match_key

# Up to this many spellings of a plate are looked up by the plate_normalized index; a plate
# with more (long runs of 0s: O/D/Q/0 each) is found by a scan instead.
MAX_SPELLINGS = 20_000
_CHUNK = 500
_SPELLINGS: dict[str, str] = {}
for _glyph, _digit in PLATE_LOOKALIKES.items():
    _SPELLINGS[_digit] = _SPELLINGS.get(_digit, _digit) + _glyph
# A plate as written in free text: letters and digits, maybe joined by . - or /.
_TOKEN = re.compile(r"[A-Za-z0-9Đđ]+(?:[.\-/][A-Za-z0-9Đđ]+)*")


@dataclass
class Erasure:
    """What one erasure changed, and the keyed hash it was audited under."""

    plate_hash: str
    sessions: int = 0
    events: int = 0
    snapshots: int = 0
    anomalies: int = 0
    offline_decisions: int = 0
    list_entries: int = 0
    subscriptions: int = 0
    lane_commands: int = 0
    audit_entries: int = 0


def plate_hash(key: str, *, secret: str) -> str:
    """A keyed hash of a match key: the same plate gives the same hash on every central of
    the deployment (the JWT secret is shared), and it cannot be reversed by trying plates
    without the secret."""
    digest = hmac.new(secret.encode(), f"plate-erasure:{key}".encode(), hashlib.sha256)
    return "hmac-sha256:" + digest.hexdigest()[:32]


def spellings(key: str) -> Iterator[str]:
    """Every normalized plate whose match key is ``key``."""
    for chars in itertools.product(*(_SPELLINGS.get(c, c) for c in key)):
        yield "".join(chars)


def spelling_count(key: str) -> int:
    count = 1
    for c in key:
        count *= len(_SPELLINGS.get(c, c))
    return count


def matches(text: str | None, key: str) -> bool:
    return bool(text) and plate_match_key(text or "") == key


def scrub_text(text: str, key: str) -> str:
    """``text`` with every plate-like word (or two words one space apart: ``51F 123.45``)
    that is the plate replaced by ERASED; punctuation around it stays."""
    words = list(_TOKEN.finditer(text))
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        if (
            i + 1 < len(words)
            and text[words[i].end() : words[i + 1].start()].isspace()
            and matches(words[i].group() + words[i + 1].group(), key)
        ):
            spans.append((words[i].start(), words[i + 1].end()))
            i += 2
            continue
        if matches(words[i].group(), key):
            spans.append(words[i].span())
        i += 1
    for start, end in reversed(spans):
        text = text[:start] + ERASED_DISPLAY + text[end:]
    return text


def scrub(value: Any, key: str) -> Any:
    """A JSON value with every string that names the plate scrubbed."""
    if isinstance(value, str):
        return scrub_text(value, key)
    if isinstance(value, list):
        return [scrub(v, key) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, key) for k, v in value.items()}
    return value


def _chunks(items: Iterable[Any]) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, _CHUNK)):
        yield chunk


def _events_by_plate(db: Session, key: str) -> set[UUID]:
    if spelling_count(key) <= MAX_SPELLINGS:
        found: set[UUID] = set()
        for chunk in _chunks(spellings(key)):
            found.update(
                db.scalars(
                    select(PlateEvent.event_id).where(PlateEvent.plate_normalized.in_(chunk))
                )
            )
        return found
    rows = db.execute(
        select(PlateEvent.event_id, PlateEvent.plate_normalized).execution_options(yield_per=5000)
    )
    return {event_id for event_id, plate in rows if plate_match_key(plate) == key}


def erase_plate(db: Session, *, plate: str, actor: str, reason: str, secret: str) -> Erasure:
    """Erase ``plate`` and its look-alikes; the caller commits."""
    key = plate_match_key(plate)
    if len(key) < 2:
        raise InvalidInput("plate must have at least two letters or digits", field="plate")
    open_lots = db.scalars(
        select(ParkingSession.lot_id).where(
            ParkingSession.plate_key == key, ParkingSession.status == "open"
        )
    ).all()
    if open_lots:
        raise Conflict(
            f"this plate has an open session in {', '.join(sorted(set(open_lots)))}: "
            "erase it after the vehicle left (or close or void the session first)",
            field="plate",
        )
    done = Erasure(plate_hash=plate_hash(key, secret=secret))

    sessions = db.scalars(select(ParkingSession).where(ParkingSession.plate_key == key)).all()
    session_ids = {s.id for s in sessions}
    event_ids = _events_by_plate(db, key)
    for s in sessions:
        event_ids.update(
            e for e in (s.entry_event_id, s.exit_event_id, s.snapshot_event_id) if e is not None
        )
    for chunk in _chunks(session_ids):
        event_ids.update(
            db.scalars(select(PlateEvent.event_id).where(PlateEvent.session_id.in_(chunk)))
        )
    for s in sessions:
        s.plate_display = ERASED_DISPLAY
        s.plate_normalized = ERASED_KEY
        s.plate_key = ERASED_KEY
        if s.exit_plate is not None:
            s.exit_plate = ERASED_DISPLAY
        if s.manual_reason:
            s.manual_reason = scrub_text(s.manual_reason, key)
    done.sessions = len(sessions)

    # Another plate's session whose exit was read as this plate keeps its own plate.
    for chunk in _chunks(event_ids):
        others = db.scalars(
            select(ParkingSession).where(
                ParkingSession.exit_event_id.in_(chunk), ParkingSession.plate_key != ERASED_KEY
            )
        )
        for other in others:
            if matches(other.exit_plate, key):
                other.exit_plate = ERASED_DISPLAY

    for chunk in _chunks(event_ids):
        done.snapshots += count_rows(
            db.execute(delete(Snapshot).where(Snapshot.event_id.in_(chunk)))
        )
        for event in db.scalars(select(PlateEvent).where(PlateEvent.event_id.in_(chunk))):
            event.plate = ERASED_DISPLAY
            event.plate_normalized = ERASED_KEY
            event.candidates = []
            event.ack = scrub(event.ack, key)
            event.has_snapshot = False
            done.events += 1
        for decision in db.scalars(
            select(OfflineGateDecision).where(OfflineGateDecision.event_id.in_(chunk))
        ):
            decision.plate = ERASED_DISPLAY
            done.offline_decisions += 1
    # Offline decisions whose event never reached central: by their own plate text.
    for decision in db.scalars(
        select(OfflineGateDecision).where(OfflineGateDecision.plate != ERASED_DISPLAY)
    ):
        if matches(decision.plate, key):
            decision.plate = ERASED_DISPLAY
            done.offline_decisions += 1

    anomaly_ids: set[int] = set()
    for chunk in _chunks(event_ids):
        anomaly_ids.update(db.scalars(select(Anomaly.id).where(Anomaly.event_id.in_(chunk))))
    for chunk in _chunks(session_ids):
        anomaly_ids.update(db.scalars(select(Anomaly.id).where(Anomaly.session_id.in_(chunk))))
    for chunk in _chunks(anomaly_ids):
        for anomaly in db.scalars(select(Anomaly).where(Anomaly.id.in_(chunk))):
            anomaly.plate = ERASED_DISPLAY
            anomaly.detail = scrub_text(anomaly.detail, key)
            done.anomalies += 1

    for chunk in _chunks(session_ids):
        for command in db.scalars(select(LaneCommand).where(LaneCommand.session_id.in_(chunk))):
            command.reason = scrub_text(command.reason, key)
            command.detail = scrub_text(command.detail, key)
            done.lane_commands += 1

    done.list_entries = count_rows(db.execute(delete(ListEntry).where(ListEntry.plate_key == key)))
    done.subscriptions = count_rows(
        db.execute(delete(Subscription).where(Subscription.plate_key == key))
    )

    # Earlier audit entries: those about the plate (lists, passes) and its sessions.
    touched: list[AuditEntry] = []
    for entry in db.scalars(select(AuditEntry).where(AuditEntry.target_type == "plate")):
        if matches(entry.target_id, key):
            entry.target_id = ERASED_KEY
            touched.append(entry)
    for chunk in _chunks(str(i) for i in session_ids):
        touched.extend(
            db.scalars(
                select(AuditEntry).where(
                    AuditEntry.target_type == "session", AuditEntry.target_id.in_(chunk)
                )
            )
        )
    for entry in touched:
        entry.reason = scrub_text(entry.reason, key)
        entry.details = scrub(entry.details, key)
    done.audit_entries = len(touched)

    db.flush()
    counts = {k: v for k, v in asdict(done).items() if k != "plate_hash"}
    audit.record(
        db,
        actor=actor,
        action="plate.erase",
        target_type="plate",
        target_id=done.plate_hash,
        reason=scrub_text(reason, key),
        details={"match": "look-alikes (plate_match_key)", **counts},
    )
    return done

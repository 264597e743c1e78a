"""Gate decisions for many plate events in one transaction, with Core statements.

The ingest hot path. One ``Ledger`` lives for one transaction and decides the events handed to
it in order, exactly as if each had been decided alone after the previous one committed:

* entries: the deny/allow lists, subscriptions and open sessions of every entry plate are read
  up front in one round trip (``prefetch``); the sessions that entries open are kept in memory
  and inserted together (``flush``), so later events of the same transaction see them;
* exits: pending sessions are flushed first, then the exit is matched against the database
  (exact plate, the reader's candidates, then one character off) and the session is closed;
* anomalies, the sessions' ids in answers and live messages are resolved at ``flush`` and
  announced in the order the events were decided.

``ingest`` is the whole of it for the new events of a batch (``events.service`` has already
set aside replays, refusals and repeats): decide each in order, then write what they cause,
the event rows and snapshots included (``bulk.insert_rows``: one statement per table), and
return each event's answer.

Nothing here commits; the caller does. A race lost to another transaction (the unique open
session index) surfaces as ``IntegrityError`` from ``flush`` and the caller replays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from app.central.bulk import among, insert_rows
from app.central.clock import utcnow
from app.central.core.events import PlateEvent as PlateEventRow
from app.central.core.events import Snapshot
from app.central.core.identity import CameraIdentity
from app.central.core.lots import Lot, LotOccupancy
from app.central.lists.models import ListEntry, Subscription
from app.central.live.service import announce
from app.central.sessions import rules
from app.central.sessions.matching import within_one_edit
from app.central.sessions.models import Anomaly, ParkingSession
from app.central.sessions.rules import SAME_ARRIVAL, LotRules, Standing
from app.central.tariffs.models import Tariff
from app.central.tariffs.service import Fee
from app.contract import (
    EventAck,
    GateAction,
    GateDecision,
    GateReason,
    PlateEvent,
    normalize_plate,
    plate_match_key,
)

_SESSIONS = cast(Table, ParkingSession.__table__)
_ANOMALIES = cast(Table, Anomaly.__table__)
_EVENTS = cast(Table, PlateEventRow.__table__)
_SNAPSHOTS = cast(Table, Snapshot.__table__)


@dataclass(frozen=True)
class Sighting:
    """What the session logic needs to know about one plate event."""

    event_id: UUID
    camera_id: str
    lot_id: str
    plate: str
    plate_normalized: str
    candidates: tuple[str, ...]
    confidence: float
    vehicle_type: str
    captured_at: datetime

    @classmethod
    def of(cls, lane: CameraIdentity, event: PlateEvent) -> Sighting:
        """The event as the lane saw it; the reader's other candidates once each, by their
        normalised text, without the plate itself."""
        plate_n = event.plate_normalized
        return cls(
            event_id=event.event_id,
            camera_id=lane.id,
            lot_id=lane.lot_id,
            plate=event.plate,
            plate_normalized=plate_n,
            candidates=tuple(
                p
                for p in dict.fromkeys(normalize_plate(c.plate) for c in event.candidates)
                if p != plate_n
            ),
            confidence=event.confidence,
            vehicle_type=event.vehicle_type.value,
            captured_at=event.captured_at,
        )


@dataclass
class SessionRef:
    """An open (or just closed) session as plain values; ``id`` is None until flushed."""

    lot_id: str
    plate_normalized: str
    plate_display: str
    vehicle_type: str
    entered_at: datetime
    id: int | None = None
    status: str = "open"
    exited_at: datetime | None = None
    fee: int | None = None
    entry_event_id: UUID | None = None
    fee_basis: dict[str, Any] | None = None
    paid_amount: int = 0
    paid_at: datetime | None = None
    exit_held_at: datetime | None = None
    exit_held_camera_id: str | None = None

    def view(self) -> dict[str, Any]:
        """Same shape as ``sessions.service.session_view``."""
        return {
            "id": self.id,
            "lot_id": self.lot_id,
            "plate": self.plate_display,
            "status": self.status,
            "vehicle_type": self.vehicle_type,
            "entered_at": self.entered_at.isoformat(),
            "exited_at": self.exited_at.isoformat() if self.exited_at else None,
            "fee": self.fee,
            "paid_amount": self.paid_amount,
            "exit_held_at": self.exit_held_at.isoformat() if self.exit_held_at else None,
            "exit_held_camera_id": self.exit_held_camera_id,
        }


@dataclass(frozen=True)
class Outcome:
    decision: GateDecision
    session: SessionRef | None
    anomaly: str | None


# One round trip for everything the entries of a transaction need to know about their plates:
# list entries, subscriptions and open sessions (kind, plate key, lot, t1, t2, session id,
# plate as stored), found by the plates' match keys.
def _facts(pg: bool) -> CompoundSelect[Any]:
    return union_all(
        select(
            ListEntry.kind,
            ListEntry.plate_key,
            ListEntry.lot_id,
            ListEntry.expires_at,
            ListEntry.expires_at,
            literal_column("0"),
            ListEntry.plate_normalized,
        ).where(among(ListEntry.plate_key, "plates", postgresql=pg)),
        select(
            literal_column("'sub'"),
            Subscription.plate_key,
            Subscription.lot_id,
            Subscription.valid_from,
            Subscription.valid_until,
            literal_column("0"),
            Subscription.plate_normalized,
        ).where(among(Subscription.plate_key, "plates", postgresql=pg)),
        select(
            literal_column("'open'"),
            ParkingSession.plate_key,
            ParkingSession.lot_id,
            ParkingSession.entered_at,
            ParkingSession.entered_at,
            ParkingSession.id,
            ParkingSession.plate_normalized,
        ).where(
            among(ParkingSession.plate_key, "plates", postgresql=pg),
            ParkingSession.status == "open",
        ),
    )


# Keyed by "is the backend PostgreSQL" (see ``bulk.among``).
_FACTS = {pg: _facts(pg) for pg in (False, True)}

# The lot's capacity and its open sessions (the counter row the database keeps, migration 0006).
_ROOM = (
    select(Lot.capacity, func.coalesce(LotOccupancy.open_sessions, 0))
    .outerjoin(LotOccupancy, LotOccupancy.lot_id == Lot.id)
    .where(Lot.id == bindparam("lot"))
)

_SESSION_COLUMNS = (
    ParkingSession.id,
    ParkingSession.lot_id,
    ParkingSession.plate_normalized,
    ParkingSession.plate_key,
    ParkingSession.plate_display,
    ParkingSession.vehicle_type,
    ParkingSession.entered_at,
    ParkingSession.entry_event_id,
    ParkingSession.fee_basis,
    ParkingSession.paid_amount,
    ParkingSession.paid_at,
)
_OPEN_BY_PLATES = {
    pg: select(*_SESSION_COLUMNS).where(
        ParkingSession.lot_id == bindparam("lot"),
        ParkingSession.status == "open",
        among(ParkingSession.plate_key, "plates", postgresql=pg),
    )
    for pg in (False, True)
}
_OPEN_NEAR = select(*_SESSION_COLUMNS).where(
    ParkingSession.lot_id == bindparam("lot"),
    ParkingSession.status == "open",
    func.length(ParkingSession.plate_key).between(bindparam("shorter"), bindparam("longer")),
)
_LOT_RULES = select(
    Lot.capacity, Lot.exit_grace_minutes, Lot.lost_ticket_fee, Lot.max_stay_hours
).where(Lot.id == bindparam("lot"))
_TARIFF = select(Tariff).where(
    Tariff.lot_id == bindparam("lot"), Tariff.vehicle_type == bindparam("vt")
)
_NEXT_SESSION_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('parking_sessions', 'id')) FROM generate_series(1, :n)"
)
_INSERT_SESSIONS = insert(_SESSIONS).returning(_SESSIONS.c.id, sort_by_parameter_order=True)
_CLOSE_SESSION = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("sid"))
    .values(
        status="closed",
        exit_event_id=bindparam("exit_event_id"),
        exited_at=bindparam("exited_at"),
        exit_plate=bindparam("exit_plate"),
        fee=bindparam("fee"),
        fee_basis=bindparam("fee_basis"),
        exit_held_at=None,
        exit_held_camera_id=None,
    )
)
# The vehicle waits at an exit lane for its fee to be paid: the session stays open.
_HOLD_SESSION = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("sid"))
    .values(
        exit_event_id=bindparam("exit_event_id"),
        exit_held_at=bindparam("held_at"),
        exit_held_camera_id=bindparam("held_camera"),
        exit_plate=bindparam("exit_plate"),
        fee=bindparam("fee"),
        fee_basis=bindparam("fee_basis"),
    )
)


def _ref(row: Any) -> SessionRef:
    return SessionRef(
        id=row.id,
        lot_id=row.lot_id,
        plate_normalized=row.plate_normalized,
        plate_display=row.plate_display,
        vehicle_type=row.vehicle_type,
        entered_at=row.entered_at,
        entry_event_id=row.entry_event_id,
        fee_basis=row.fee_basis,
        paid_amount=row.paid_amount or 0,
        paid_at=row.paid_at,
    )


Message = tuple[str, Callable[[], dict[str, Any]]]


def event_ack(event: PlateEvent, outcome: Outcome, *, now: datetime) -> dict[str, Any]:
    """The answer to the event, as stored with it and replayed for every retry."""
    return EventAck(
        event_id=event.event_id,
        accepted_at=now,
        session_id=outcome.session.id if outcome.session else None,
        decision=outcome.decision,
        anomaly=outcome.anomaly,
    ).model_dump(mode="json")


def event_row(
    lane: CameraIdentity,
    event: PlateEvent,
    ack: dict[str, Any],
    *,
    now: datetime,
    has_snapshot: bool,
) -> dict[str, Any]:
    """The ``plate_events`` row of an accepted event."""
    return {
        "event_id": event.event_id,
        "camera_id": lane.id,
        "lot_id": lane.lot_id,
        "direction": lane.direction,
        "captured_at": event.captured_at,
        "received_at": now,
        "plate": event.plate,
        "plate_normalized": event.plate_normalized,
        "confidence": event.confidence,
        "vehicle_type": event.vehicle_type.value,
        "candidates": [c.model_dump() for c in event.candidates],
        "session_id": ack["session_id"],
        "ack": ack,
        "has_snapshot": has_snapshot,
    }


def plate_event_message(
    lane: CameraIdentity, event: PlateEvent, outcome: Outcome
) -> Callable[[], dict[str, Any]]:
    """The live ``plate_event`` message, built at announce time (the session id is known)."""

    def data() -> dict[str, Any]:
        return {
            "event_id": str(event.event_id),
            "camera_id": lane.id,
            "lot_id": lane.lot_id,
            "direction": lane.direction,
            "plate": event.plate,
            "confidence": event.confidence,
            "captured_at": event.captured_at.isoformat(),
            "has_snapshot": event.snapshot_b64 is not None,
            "decision": outcome.decision.model_dump(mode="json"),
            "session_id": outcome.session.id if outcome.session else None,
            "anomaly": outcome.anomaly,
        }

    return data


class Ledger:
    """Decides plate events in order inside one open transaction (see the module docstring)."""

    def __init__(self, db: Session, *, low_confidence: float, tz: str) -> None:
        self.db = db
        self.conn: Connection = db.connection()
        self.pg = self.conn.dialect.name == "postgresql"
        self.low_confidence = low_confidence
        self.tz = tz
        self._facts: dict[str, Standing] = {}
        self._lots: dict[str, LotRules] = {}
        self._open: dict[tuple[str, str], SessionRef | None] = {}
        self._room: dict[str, tuple[int, int]] = {}  # lot -> (capacity, open counted)
        self._pending: list[SessionRef] = []
        self._anomalies: list[tuple[dict[str, Any], SessionRef | None]] = []
        self._tariffs: dict[tuple[str, str], Tariff | None] = {}
        self.messages: list[Message] = []

    # -- the batch ---------------------------------------------------------------------------

    def ingest(
        self, items: Sequence[tuple[CameraIdentity, PlateEvent]], *, now: datetime
    ) -> list[dict[str, Any]]:
        """Decide new events in order and write all they cause: sessions, anomalies, the event
        rows and snapshots; queue the live messages. Returns each event's answer. A duplicate
        ``event_id`` (a concurrent retry) or a lost unique-open-session race raises
        ``IntegrityError`` here; the caller rolls back and replays."""
        if not items:
            return []
        self.prefetch(e.plate_normalized for lane, e in items if lane.direction == "entry")
        outcomes: list[Outcome] = []
        for lane, event in items:
            outcome = self.decide(Sighting.of(lane, event), direction=lane.direction)
            self.note("plate_event", plate_event_message(lane, event, outcome))
            outcomes.append(outcome)
        self.flush()
        acks: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        snapshots: list[dict[str, Any]] = []
        for (lane, event), outcome in zip(items, outcomes, strict=True):
            ack = event_ack(event, outcome, now=now)
            snapshot = event.snapshot_bytes()
            acks.append(ack)
            rows.append(event_row(lane, event, ack, now=now, has_snapshot=snapshot is not None))
            if snapshot is not None:
                snapshots.append({"event_id": event.event_id, "jpeg": snapshot, "created_at": now})
        insert_rows(self.conn, _EVENTS, rows)  # a duplicate event_id fails right here
        if snapshots:  # JPEGs stay binary binds: as hex inside JSON they would travel twice as big
            self.conn.execute(insert(_SNAPSHOTS), snapshots)
        self.announce()
        return acks

    # -- reads -----------------------------------------------------------------------------

    def prefetch(self, plates: Iterable[str]) -> None:
        """Read lists, subscriptions and open sessions of these plates in one query; entries
        call it once for the whole transaction. Everything is keyed by the plates' match keys
        (``plate_match_key``): a look-alike character is the same plate."""
        wanted = sorted({plate_match_key(p) for p in plates} - self._facts.keys())
        if not wanted:
            return
        for plate in wanted:
            self._facts[plate] = Standing()
        for kind, key, lot, t1, t2, sid, plate in self.conn.execute(
            _FACTS[self.pg], {"plates": wanted}
        ):
            facts = self._facts[key]
            if kind == "sub":
                facts.subs.append((lot, t1, t2))
            elif kind == "open":
                self._open[(lot, key)] = SessionRef(
                    id=sid, lot_id=lot, plate_normalized=plate, plate_display="",
                    vehicle_type="", entered_at=t1,
                )  # fmt: skip
            else:
                facts.lists.append((kind, lot, t2))

    def standing(self, plate: str) -> Standing:
        """The plate's lists and subscriptions (read once per transaction)."""
        return self._facts_for(plate)

    def _facts_for(self, plate: str) -> Standing:
        key = plate_match_key(plate)
        if key not in self._facts:
            self.prefetch([key])
        return self._facts[key]

    def _inside(self, lot_id: str, plate: str) -> SessionRef | None:
        self._facts_for(plate)  # also reads the plate's open sessions
        return self._open.get((lot_id, plate_match_key(plate)))

    def _has_room(self, lot_id: str) -> tuple[bool, int]:
        if lot_id not in self._room:
            row = self.conn.execute(_ROOM, {"lot": lot_id}).one_or_none()
            capacity, counted = row if row is not None else (0, 0)
            self._room[lot_id] = (int(capacity or 0), int(counted or 0))
        capacity, counted = self._room[lot_id]
        pending = sum(1 for s in self._pending if s.lot_id == lot_id)
        return rules.has_room(capacity=capacity, counted=counted + pending), capacity

    def lot(self, lot_id: str) -> LotRules:
        if lot_id not in self._lots:
            row = self.conn.execute(_LOT_RULES, {"lot": lot_id}).one_or_none()
            self._lots[lot_id] = LotRules(*row) if row is not None else LotRules(capacity=0)
        return self._lots[lot_id]

    def _tariff(self, lot_id: str, vehicle_type: str) -> Tariff | None:
        key = (lot_id, vehicle_type)
        if key not in self._tariffs:
            self._tariffs[key] = self.db.scalar(_TARIFF, {"lot": lot_id, "vt": vehicle_type})
        return self._tariffs[key]

    # -- effects ---------------------------------------------------------------------------

    def _anomaly(
        self,
        kind: str,
        sighting: Sighting,
        *,
        session: SessionRef | None = None,
        detail: str = "",
    ) -> None:
        row = {
            "kind": kind,
            "lot_id": sighting.lot_id,
            "camera_id": sighting.camera_id,
            "event_id": sighting.event_id,
            "session_id": None,
            "plate": sighting.plate,
            "detail": detail,
            "created_at": utcnow(),
            "resolved": False,
        }
        self._anomalies.append((row, session))
        data = {"kind": kind, "lot_id": sighting.lot_id, "plate": sighting.plate, "detail": detail}
        self.messages.append(("anomaly", lambda: data))

    def note(self, kind: str, data: Callable[[], dict[str, Any]]) -> None:
        """A live message, announced at ``announce`` in decision order."""
        self.messages.append((kind, data))

    def flush_sessions(self) -> None:
        """Insert the sessions opened so far (their ids become known)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        now = utcnow()
        rows = [
            {
                "lot_id": s.lot_id,
                "plate_normalized": s.plate_normalized,
                "plate_key": plate_match_key(s.plate_normalized),
                "plate_display": s.plate_display,
                "vehicle_type": s.vehicle_type,
                "status": "open",
                "entry_event_id": s.entry_event_id,
                "entered_at": s.entered_at,
                "fee_basis": s.fee_basis,
                "created_at": now,
            }
            for s in pending
        ]
        if len(rows) == 1:
            ids = [self.conn.execute(_INSERT_SESSIONS, rows[0]).scalar_one()]
        elif self.conn.dialect.name == "postgresql":
            # Ids from the column's own sequence in one round trip, then one INSERT of all rows
            # (bulk.insert_rows): a multi-row INSERT ... RETURNING is a new, long statement for
            # every batch size, which the driver parses again each time (it showed in profiles).
            ids = sorted(self.conn.execute(_NEXT_SESSION_IDS, {"n": len(rows)}).scalars())
            for row, session_id in zip(rows, ids, strict=True):
                row["id"] = session_id
            insert_rows(self.conn, _SESSIONS, rows)
        else:
            ids = list(self.conn.execute(_INSERT_SESSIONS, rows).scalars())
        for session, session_id in zip(pending, ids, strict=True):
            session.id = session_id
        for lot_id in {s.lot_id for s in pending}:
            self._room.pop(lot_id, None)  # counted again, with these, when next needed

    def flush(self) -> None:
        """Write everything decided so far: sessions, then anomalies (with session ids)."""
        self.flush_sessions()
        if self._anomalies:
            rows = []
            for row, session in self._anomalies:
                if session is not None:
                    row["session_id"] = session.id
                rows.append(row)
            self._anomalies = []
            insert_rows(self.conn, _ANOMALIES, rows)

    def announce(self) -> None:
        """Queue the live messages (sent on commit) in the order the events were decided."""
        at = utcnow().isoformat()  # one instant for the transaction's messages
        for kind, data in self.messages:
            announce(self.db, kind=kind, data=data(), at=at)
        self.messages = []

    # -- decisions -------------------------------------------------------------------------

    def decide(self, sighting: Sighting, *, direction: str) -> Outcome:
        if direction == "entry":
            return self.entry(sighting)
        return self.exit(sighting)

    def entry(self, sighting: Sighting) -> Outcome:
        lot_id, plate_n, at = sighting.lot_id, sighting.plate_normalized, sighting.captured_at
        anomaly: str | None = None
        if sighting.confidence < self.low_confidence:
            anomaly = "low_confidence"
            self._anomaly(anomaly, sighting, detail=f"{sighting.confidence:.2f}")

        facts = self._facts_for(plate_n)
        listed = facts.listed(lot_id=lot_id, at=at)
        if listed == "deny":
            self._anomaly("deny_listed", sighting)
            return Outcome(
                GateDecision(
                    action=GateAction.DENY,
                    reason=GateReason.DENY_LISTED,
                    message="vehicle is on the deny list",
                ),
                None,
                "deny_listed",
            )

        inside = self._inside(lot_id, plate_n)
        if inside is not None:
            if abs(at - inside.entered_at) > SAME_ARRIVAL:
                anomaly = "duplicate_entry"
                self._anomaly(
                    anomaly,
                    sighting,
                    session=inside,
                    detail=f"already inside since {inside.entered_at.isoformat()}",
                )
            return Outcome(
                GateDecision(
                    action=GateAction.OPEN,
                    reason=GateReason.ALREADY_INSIDE,
                    message="an open session for this plate exists",
                ),
                inside,
                anomaly,
            )

        if listed == "allow":
            reason, basis = GateReason.ALLOW_LISTED, "allow_listed"
        elif facts.subscriber(lot_id=lot_id, at=at):
            reason, basis = GateReason.SUBSCRIBER, "subscriber"
        else:
            room, capacity = self._has_room(lot_id)
            if not room:
                return Outcome(
                    GateDecision(
                        action=GateAction.DENY,
                        reason=GateReason.LOT_FULL,
                        message=f"lot {lot_id} is full ({capacity})",
                    ),
                    None,
                    anomaly,
                )
            reason, basis = GateReason.ENTRY_ALLOWED, "tariff"

        session = SessionRef(
            lot_id=lot_id,
            plate_normalized=plate_n,
            plate_display=sighting.plate,
            vehicle_type=sighting.vehicle_type,
            entered_at=at,
            entry_event_id=sighting.event_id,
            fee_basis={"entry": basis},
        )
        self._pending.append(session)
        self._open[(lot_id, plate_match_key(plate_n))] = session
        self.note("session_opened", session.view)
        return Outcome(GateDecision(action=GateAction.OPEN, reason=reason), session, anomaly)

    def match_exit(self, sighting: Sighting) -> tuple[SessionRef | None, bool]:
        """The open session this exit belongs to, and whether the plate had to be matched fuzzily.

        Exact plate first, then the reader's other candidates, then the single open session in
        the lot within one character (edit distance 1). Two or more fuzzy matches: no match.
        Plates are compared on their match keys throughout: ``0AB1234`` is ``OAB1234`` exactly
        (not fuzzily), and one edit means one character beyond the look-alikes.
        """
        self.flush_sessions()  # the database must see the sessions opened before this exit
        key = plate_match_key(sighting.plate_normalized)
        wanted = list(dict.fromkeys([key, *(plate_match_key(c) for c in sighting.candidates)]))
        found: dict[str, Any] = {}
        for row in self.conn.execute(
            _OPEN_BY_PLATES[self.pg], {"lot": sighting.lot_id, "plates": wanted}
        ):
            # two open sessions with one key (stored before keys existed): the exact text first
            if row.plate_key not in found or row.plate_normalized == sighting.plate_normalized:
                found[row.plate_key] = row
        for plate_k in wanted:
            if plate_k in found:
                return _ref(found[plate_k]), plate_k != key
        length = len(key)
        near = [
            row
            for row in self.conn.execute(
                _OPEN_NEAR, {"lot": sighting.lot_id, "shorter": length - 1, "longer": length + 1}
            )
            if within_one_edit(row.plate_key, key)
        ]
        return (_ref(near[0]), True) if len(near) == 1 else (None, False)

    def fee(self, session: SessionRef, *, plate_n: str, exited_at: datetime) -> Fee:
        """The stay's fee (``rules.exit_fee``) with the plate's standing and the lot's tariff."""
        return rules.exit_fee(
            self._facts_for(plate_n),
            self._tariff(session.lot_id, session.vehicle_type),
            lot_id=session.lot_id,
            entered_at=session.entered_at,
            exited_at=exited_at,
            tz=self.tz,
        )

    def exit(self, sighting: Sighting) -> Outcome:
        anomaly: str | None = None
        if sighting.confidence < self.low_confidence:
            anomaly = "low_confidence"
            self._anomaly(anomaly, sighting, detail=f"{sighting.confidence:.2f}")
        session, fuzzy = self.match_exit(sighting)
        if session is None:
            self._anomaly("exit_without_entry", sighting)
            return Outcome(
                GateDecision(
                    action=GateAction.DENY,
                    reason=GateReason.NO_ENTRY_RECORD,
                    message="no open session matches this plate; call a guard",
                ),
                None,
                "exit_without_entry",
            )
        if fuzzy:
            anomaly = "plate_mismatch"
            self._anomaly(
                anomaly,
                sighting,
                session=session,
                detail=f"entry {session.plate_display} / exit {sighting.plate}",
            )
        if sighting.captured_at < session.entered_at:
            # One of the two lanes' clocks is wrong: the stay's length (and fee) cannot be known.
            anomaly = "exit_before_entry"
            self._anomaly(
                anomaly,
                sighting,
                session=session,
                detail=f"exit {sighting.captured_at.isoformat()} before entry "
                f"{session.entered_at.isoformat()}",
            )
        at = max(sighting.captured_at, session.entered_at)
        fee = self.fee(session, plate_n=session.plate_normalized, exited_at=at)
        lot = self.lot(session.lot_id)
        due = rules.amount_due(
            fee.total, paid_amount=session.paid_amount, paid_at=session.paid_at, at=at, lot=lot
        )
        session.fee_basis = {**(session.fee_basis or {}), "exit": fee.as_dict()}
        if due > 0:
            return self._hold(sighting, session, fee=fee, due=due, at=at, anomaly=anomaly)
        prepaid = session.paid_amount > 0
        session.status = "closed"
        session.exited_at = at
        # Paid within the grace period: the stay costs what was paid for it.
        session.fee = (
            session.paid_amount if prepaid and fee.total > session.paid_amount else fee.total
        )
        self.conn.execute(
            _CLOSE_SESSION,
            {
                "sid": session.id,
                "exit_event_id": sighting.event_id,
                "exited_at": session.exited_at,
                "exit_plate": sighting.plate,
                "fee": session.fee,
                "fee_basis": session.fee_basis,
            },
        )
        self._open[(session.lot_id, plate_match_key(session.plate_normalized))] = None
        self._room.pop(session.lot_id, None)
        view = session.view()
        self.note("session_closed", lambda: view)
        reason = GateReason.EXIT_PREPAID if prepaid else GateReason.EXIT_FREE
        return Outcome(
            GateDecision(action=GateAction.OPEN, reason=reason, fee=session.fee),
            session,
            anomaly,
        )

    def _hold(
        self,
        sighting: Sighting,
        session: SessionRef,
        *,
        fee: Fee,
        due: int,
        at: datetime,
        anomaly: str | None,
    ) -> Outcome:
        """The fee is not paid: the barrier stays closed, the session stays open (the vehicle
        is still inside) and remembers the lane it waits at, for the cashier."""
        session.fee = fee.total
        session.exit_held_at = at
        session.exit_held_camera_id = sighting.camera_id
        self.conn.execute(
            _HOLD_SESSION,
            {
                "sid": session.id,
                "exit_event_id": sighting.event_id,
                "held_at": at,
                "held_camera": sighting.camera_id,
                "exit_plate": sighting.plate,
                "fee": session.fee,
                "fee_basis": session.fee_basis,
            },
        )
        view = {**session.view(), "due": due, "camera_id": sighting.camera_id}
        self.note("session_held", lambda: view)
        return Outcome(
            GateDecision(
                action=GateAction.HOLD,
                reason=GateReason.PAYMENT_REQUIRED,
                message=f"{due} due; pay the cashier",
                fee=due,
            ),
            session,
            anomaly,
        )

"""Retention (issue 19): every kind of record is deleted once it is older than its deployment's
bound (``PARKING_RETENTION_<KIND>_DAYS``; 0 keeps it forever), in bounded batches, one
transaction each, so no run holds long locks.

What an open session still needs is never deleted: the session itself, its entry and exit
events and the operator's lane picture (``snapshot_event_id``), every event and anomaly that
names it, their snapshots, and its payments. Payments are accounting records: a closed
session past its own retention that still has payments is *anonymised* (plate replaced by
``ERASED``; times and amounts stay) and deleted with its last payment.

Snapshots are stored in the database (``snapshots.jpeg``): deleting the row deletes the image.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.central.audit.models import AuditEntry
from app.central.commands.models import LaneCommand
from app.central.core.events import PlateEvent, Snapshot
from app.central.edgesync.models import OfflineGateDecision
from app.central.payments.models import Payment
from app.central.sessions.models import Anomaly, ParkingSession
from app.central.settings import RETENTION_KINDS, Settings

# What an erased plate reads as. ``~`` is never in a normalized plate (letters and digits
# only), so an erased row never matches a real plate again, by text or by match key.
ERASED_DISPLAY = "ERASED"
ERASED_KEY = "~ERASED"
# Lane commands still in flight are never deleted (they expire within seconds anyway).
_LIVE_COMMANDS = ("pending", "delivered")


@dataclass(frozen=True)
class RetentionPolicy:
    days: dict[str, int]  # kind -> days kept; 0 or missing: forever
    batch_size: int = 1000
    max_batches: int = 100  # per kind and run: one run never works for long
    # Seconds one run may work before it stops between two batches (None: no limit). The
    # duties' thread also expires lane commands: a backlog must not hold it for minutes.
    time_budget_s: float | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, time_budget_s: float | None = None
    ) -> RetentionPolicy:
        return cls(
            days={kind: settings.retention_days(kind) for kind in RETENTION_KINDS},
            batch_size=settings.retention_batch_size,
            max_batches=settings.retention_max_batches,
            time_budget_s=time_budget_s,
        )

    def cutoff(self, kind: str, now: datetime) -> datetime | None:
        days = self.days.get(kind, 0)
        return now - timedelta(days=days) if days > 0 else None


@dataclass
class RetentionReport:
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETENTION_KINDS, 0))
    anonymised: dict[str, int] = field(default_factory=lambda: {"sessions": 0})
    batches: int = 0
    # A kind had more to delete than max_batches allowed: run again soon.
    unfinished: bool = False

    @property
    def total(self) -> int:
        return sum(self.deleted.values()) + sum(self.anonymised.values())


def _open_session_ids() -> Any:
    return select(ParkingSession.id).where(ParkingSession.status == "open")


def needed_by_open_session(event_id: Any) -> ColumnElement[bool]:
    """True for an event (id) an open session still needs."""
    named = aliased(PlateEvent)
    return or_(
        exists().where(
            ParkingSession.status == "open",
            or_(
                ParkingSession.entry_event_id == event_id,
                ParkingSession.exit_event_id == event_id,
                ParkingSession.snapshot_event_id == event_id,
            ),
        ),
        exists().where(named.event_id == event_id, named.session_id.in_(_open_session_ids())),
    )


def _run_batches(
    db: Session,
    report: RetentionReport,
    policy: RetentionPolicy,
    deadline: float | None,
    select_ids: Callable[[], Sequence[Any]],
    act: Callable[[list[Any]], None],
) -> None:
    """``act`` on at most ``batch_size`` ids per transaction until none are left,
    ``max_batches`` ran or the deadline passed. ``select_ids`` must stop returning the rows
    ``act`` handled."""
    for _ in range(policy.max_batches):
        if deadline is not None and time.monotonic() >= deadline:
            report.unfinished = True
            return
        ids = list(select_ids())
        if not ids:
            return
        act(ids)
        db.commit()
        report.batches += 1
        if len(ids) < policy.batch_size:
            return
    report.unfinished = True


def count_rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def purge(db: Session, *, now: datetime, policy: RetentionPolicy) -> RetentionReport:
    """One retention run over every kind. Commits after each batch."""
    report = RetentionReport()
    limit = policy.batch_size
    deadline = None if policy.time_budget_s is None else time.monotonic() + policy.time_budget_s
    query: Select[Any]

    def run(select_ids: Callable[[], Sequence[Any]], act: Callable[[list[Any]], None]) -> None:
        _run_batches(db, report, policy, deadline, select_ids, act)

    def deleter(kind: str, table: Any, key: Any) -> Callable[[list[Any]], None]:
        def act(ids: list[Any]) -> None:
            report.deleted[kind] += count_rows(db.execute(delete(table).where(key.in_(ids))))

        return act

    # Payments first: a session whose payments go in this run can go with them.
    if (cutoff := policy.cutoff("payments", now)) is not None:
        open_owner = exists().where(
            ParkingSession.id == Payment.session_id, ParkingSession.status == "open"
        )
        query = (
            select(Payment.id)
            .where(Payment.paid_at < cutoff, ~open_owner)
            .order_by(Payment.paid_at)
            .limit(limit)
        )
        run(lambda: db.scalars(query).all(), deleter("payments", Payment, Payment.id))

    if (cutoff := policy.cutoff("sessions", now)) is not None:
        old = and_(
            ParkingSession.status != "open",
            or_(
                ParkingSession.exited_at < cutoff,
                and_(ParkingSession.exited_at.is_(None), ParkingSession.entered_at < cutoff),
            ),
        )
        paid = exists().where(Payment.session_id == ParkingSession.id)
        unpaid_q = select(ParkingSession.id).where(old, ~paid).limit(limit)

        def drop_sessions(ids: list[Any]) -> None:
            # ~paid again: a payment taken since the select keeps its session (foreign key).
            result = db.execute(
                delete(ParkingSession).where(ParkingSession.id.in_(ids), ~paid, old)
            )
            report.deleted["sessions"] += count_rows(result)

        run(lambda: db.scalars(unpaid_q).all(), drop_sessions)
        # Still has payments (kept longer): the plate goes, the accounting stays.
        paid_q = (
            select(ParkingSession.id)
            .where(old, paid, ParkingSession.plate_key != ERASED_KEY)
            .limit(limit)
        )

        def anonymise(ids: list[Any]) -> None:
            result = db.execute(
                update(ParkingSession)
                .where(ParkingSession.id.in_(ids))
                .values(**erased_session_values())
            )
            report.anonymised["sessions"] += count_rows(result)

        run(lambda: db.scalars(paid_q).all(), anonymise)

    if (cutoff := policy.cutoff("anomalies", now)) is not None:
        query = (
            select(Anomaly.id)
            .where(
                Anomaly.created_at < cutoff,
                or_(Anomaly.session_id.is_(None), Anomaly.session_id.not_in(_open_session_ids())),
            )
            .limit(limit)
        )
        run(lambda: db.scalars(query).all(), deleter("anomalies", Anomaly, Anomaly.id))

    if (cutoff := policy.cutoff("lane_commands", now)) is not None:
        query = (
            select(LaneCommand.id)
            .where(LaneCommand.issued_at < cutoff, LaneCommand.status.not_in(_LIVE_COMMANDS))
            .limit(limit)
        )
        run(
            lambda: db.scalars(query).all(),
            deleter("lane_commands", LaneCommand, LaneCommand.id),
        )

    if (cutoff := policy.cutoff("snapshots", now)) is not None:
        query = (
            select(Snapshot.event_id)
            .where(Snapshot.created_at < cutoff, ~needed_by_open_session(Snapshot.event_id))
            .limit(limit)
        )

        def drop_snapshots(ids: list[Any]) -> None:
            report.deleted["snapshots"] += count_rows(
                db.execute(delete(Snapshot).where(Snapshot.event_id.in_(ids)))
            )
            db.execute(
                update(PlateEvent).where(PlateEvent.event_id.in_(ids)).values(has_snapshot=False)
            )

        run(lambda: db.scalars(query).all(), drop_snapshots)

    if (cutoff := policy.cutoff("events", now)) is not None:
        query = (
            select(PlateEvent.event_id)
            .where(
                PlateEvent.received_at < cutoff,
                or_(
                    PlateEvent.session_id.is_(None),
                    PlateEvent.session_id.not_in(_open_session_ids()),
                ),
                ~exists().where(
                    ParkingSession.status == "open",
                    or_(
                        ParkingSession.entry_event_id == PlateEvent.event_id,
                        ParkingSession.exit_event_id == PlateEvent.event_id,
                        ParkingSession.snapshot_event_id == PlateEvent.event_id,
                    ),
                ),
            )
            .limit(limit)
        )

        def drop_events(ids: list[Any]) -> None:
            # The snapshots first (the foreign key cascades on PostgreSQL; be explicit).
            report.deleted["snapshots"] += count_rows(
                db.execute(delete(Snapshot).where(Snapshot.event_id.in_(ids)))
            )
            report.deleted["events"] += count_rows(
                db.execute(delete(PlateEvent).where(PlateEvent.event_id.in_(ids)))
            )

        run(lambda: db.scalars(query).all(), drop_events)

    if (cutoff := policy.cutoff("offline_decisions", now)) is not None:
        query = (
            select(OfflineGateDecision.event_id)
            .where(OfflineGateDecision.decided_at < cutoff)
            .limit(limit)
        )
        run(
            lambda: db.scalars(query).all(),
            deleter("offline_decisions", OfflineGateDecision, OfflineGateDecision.event_id),
        )

    if (cutoff := policy.cutoff("audit", now)) is not None:
        query = select(AuditEntry.id).where(AuditEntry.at < cutoff).limit(limit)
        run(lambda: db.scalars(query).all(), deleter("audit", AuditEntry, AuditEntry.id))

    return report


def erased_session_values() -> dict[str, Any]:
    return {
        "plate_display": ERASED_DISPLAY,
        "plate_normalized": ERASED_KEY,
        "plate_key": ERASED_KEY,
        "exit_plate": None,
    }

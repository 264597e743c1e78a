"""Retention (issue 19): each kind goes exactly when it is older than its bound, nothing an
open session needs ever goes, sessions kept for their payments lose their plate, and no
transaction deletes more than the batch bound."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session

from app.central.audit.models import AuditEntry
from app.central.commands.models import LaneCommand
from app.central.core.events import PlateEvent, Snapshot
from app.central.db import Database
from app.central.duties import Duties
from app.central.edgesync.models import OfflineGateDecision
from app.central.metrics import REGISTRY
from app.central.payments.models import Payment
from app.central.privacy.retention import ERASED_KEY, RetentionPolicy, purge
from app.central.sessions.models import Anomaly, ParkingSession
from app.central.settings import RETENTION_KINDS, Settings
from tests.conftest import build_world, make_settings

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
MAX_AGE_H = 24 * 900

BOUNDS_DAYS = [0, 1, 7, 30, 180, 365, 800]
# Hours before NOW: anywhere, or on a bound and one hour either side of it (the edge cases).
ages = st.integers(min_value=0, max_value=MAX_AGE_H) | st.sampled_from(
    sorted({max(d * 24 + o, 0) for d in BOUNDS_DAYS for o in (-1, 0, 1)})
)


@dataclass
class Stay:
    status: str  # open | closed | void
    entry_age: int
    stay_h: int
    snapshot: bool
    payment_age: int | None  # hours before NOW; None: no payment
    anomaly_age: int | None
    command: tuple[int, str] | None  # (age, status)


stays = st.builds(
    Stay,
    status=st.sampled_from(["open", "closed", "void"]),
    entry_age=ages,
    stay_h=st.integers(min_value=0, max_value=24 * 60),
    snapshot=st.booleans(),
    payment_age=st.none() | ages,
    anomaly_age=st.none() | ages,
    command=st.none() | st.tuples(ages, st.sampled_from(["pending", "pulsed", "expired"])),
)
# Bounds in days; 0 keeps forever. Small ones, so most draws delete something.
bounds = st.fixed_dictionaries({kind: st.sampled_from(BOUNDS_DAYS) for kind in RETENTION_KINDS})


def at(age_h: int) -> datetime:
    return NOW - timedelta(hours=age_h)


def gone(age_h: int, days: int) -> bool:
    """The rule under test: strictly older than the bound goes; 0 keeps forever."""
    return days > 0 and age_h > days * 24


def event_row(lot: str, camera: str, direction: str, age: int, session_id: int | None) -> Any:
    return PlateEvent(
        event_id=uuid.uuid4(), camera_id=camera, lot_id=lot, direction=direction,
        captured_at=at(age), received_at=at(age), plate="51F-123.45",
        plate_normalized="51F12345", confidence=0.9, vehicle_type="car", candidates=[],
        session_id=session_id, ack={}, has_snapshot=False,
    )  # fmt: skip


def populate(db: Session, plan: list[Stay], lone: list[int], audit: list[int]) -> dict[str, Any]:
    """Rows for the plan; returns the ids the oracle needs, by stay index."""
    for table in (Payment, Anomaly, LaneCommand, Snapshot, PlateEvent, ParkingSession,
                  OfflineGateDecision, AuditEntry):  # fmt: skip
        db.execute(delete(table))
    ids: dict[str, Any] = {"sessions": [], "entry": [], "exit": [], "lone": []}
    for n, stay in enumerate(plan):
        exit_age = max(stay.entry_age - stay.stay_h, 0)
        session = ParkingSession(
            lot_id="lot-a", plate_normalized=f"P{n}", plate_display=f"P-{n}", vehicle_type="car",
            status=stay.status, entered_at=at(stay.entry_age),
            exited_at=None if stay.status != "closed" else at(exit_age),
        )  # fmt: skip
        db.add(session)
        db.flush()
        entry = event_row("lot-a", "lane-in", "entry", stay.entry_age, session.id)
        db.add(entry)
        exit_ = None
        if stay.status == "closed":
            exit_ = event_row("lot-a", "lane-out", "exit", exit_age, session.id)
            db.add(exit_)
        db.flush()
        session.entry_event_id = entry.event_id
        session.exit_event_id = exit_.event_id if exit_ else None
        if stay.snapshot:
            entry.has_snapshot = True
            db.add(
                Snapshot(event_id=entry.event_id, jpeg=b"\xff\xd8", created_at=entry.received_at)
            )
        if stay.payment_age is not None:
            db.add(Payment(session_id=session.id, lot_id="lot-a", due=1, amount=1, method="cash",
                           operator="x", paid_at=at(stay.payment_age)))  # fmt: skip
        if stay.anomaly_age is not None:
            db.add(Anomaly(kind="low_confidence", lot_id="lot-a", event_id=entry.event_id,
                           session_id=session.id, created_at=at(stay.anomaly_age)))  # fmt: skip
        if stay.command is not None:
            age, status = stay.command
            db.add(LaneCommand(id=uuid.uuid4(), camera_id="lane-out", lot_id="lot-a",
                               operator="x", status=status, issued_at=at(age),
                               expires_at=at(age) + timedelta(seconds=10),
                               session_id=session.id))  # fmt: skip
        ids["sessions"].append(session.id)
        ids["entry"].append(entry.event_id)
        ids["exit"].append(exit_.event_id if exit_ else None)
    for age in lone:
        row = event_row("lot-a", "lane-out", "exit", age, None)
        db.add(row)
        db.add(OfflineGateDecision(event_id=row.event_id, camera_id="lane-out", lot_id="lot-a",
                                   plate="51F12345", decided_at=at(age), action="open",
                                   reason="allow", basis="lists"))  # fmt: skip
        ids["lone"].append(row.event_id)
    for age in audit:
        db.add(AuditEntry(at=at(age), actor="x", action="test", target_type="t", target_id="1"))
    db.commit()
    return ids


def count(db: Session, table: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(table)) or 0)


def check(db: Session, plan: list[Stay], lone: list[int], audit: list[int],
          days: dict[str, int], ids: dict[str, Any]) -> None:  # fmt: skip
    sessions = {s.id: s for s in db.scalars(select(ParkingSession))}
    events = set(db.scalars(select(PlateEvent.event_id)))
    snapshots = set(db.scalars(select(Snapshot.event_id)))
    payments = {p.session_id for p in db.scalars(select(Payment))}
    anomalies = {a.session_id for a in db.scalars(select(Anomaly))}
    commands = {c.session_id for c in db.scalars(select(LaneCommand))}
    for n, stay in enumerate(plan):
        sid, entry, exit_ = ids["sessions"][n], ids["entry"][n], ids["exit"][n]
        is_open = stay.status == "open"
        note(f"stay {n}: {stay}")
        paid = stay.payment_age is not None and (
            is_open or not gone(stay.payment_age, days["payments"])
        )
        assert (sid in payments) == paid
        ref_age = (
            max(stay.entry_age - stay.stay_h, 0) if stay.status == "closed" else stay.entry_age
        )
        old = not is_open and gone(ref_age, days["sessions"])
        if old and not paid:
            assert sid not in sessions
        else:
            assert sid in sessions
            assert (sessions[sid].plate_key == ERASED_KEY) == old
            if old:
                assert sessions[sid].plate_display == "ERASED"
                assert sessions[sid].entered_at == at(stay.entry_age)  # times kept
        entry_kept = is_open or not gone(stay.entry_age, days["events"])
        assert (entry in events) == entry_kept
        if exit_ is not None:
            assert (exit_ in events) == (not gone(max(stay.entry_age - stay.stay_h, 0),
                                                  days["events"]))  # fmt: skip
        snap_kept = (
            stay.snapshot
            and entry_kept
            and (is_open or not gone(stay.entry_age, days["snapshots"]))
        )
        assert (entry in snapshots) == snap_kept
        if stay.anomaly_age is not None:
            assert (sid in anomalies) == (is_open or not gone(stay.anomaly_age, days["anomalies"]))
        if stay.command is not None:
            age, status = stay.command
            live = status in ("pending", "delivered")
            assert (sid in commands) == (live or not gone(age, days["lane_commands"]))
    for event_id, age in zip(ids["lone"], lone, strict=True):
        assert (event_id in events) == (not gone(age, days["events"]))
    kept = sum(not gone(age, days["offline_decisions"]) for age in lone)
    assert count(db, OfflineGateDecision) == kept
    assert count(db, AuditEntry) == sum(not gone(age, days["audit"]) for age in audit)
    # No snapshot outlives its event; has_snapshot tells the truth.
    for row in db.scalars(select(PlateEvent)):
        assert row.has_snapshot == (row.event_id in snapshots)


def run_property(url: str, tmp_path: Path, examples: int) -> None:
    database = Database(make_settings(tmp_path, url))
    with database.session() as db:
        build_world(db)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(
        plan=st.lists(stays, max_size=8),
        lone=st.lists(ages, max_size=4),
        audit=st.lists(ages, max_size=4),
        days=bounds,
        batch=st.integers(min_value=1, max_value=4),
    )
    def prop(
        plan: list[Stay], lone: list[int], audit: list[int], days: dict[str, int], batch: int
    ) -> None:
        with database.session() as db:
            ids = populate(db, plan, lone, audit)
            report = purge(db, now=NOW, policy=RetentionPolicy(days, batch, 10_000))
            assert not report.unfinished
            db.expire_all()
            check(db, plan, lone, audit, days, ids)
            # A second run finds nothing more: the first one was complete.
            again = purge(db, now=NOW, policy=RetentionPolicy(days, batch, 10_000))
            assert again.total == 0, again

    try:
        prop()
    finally:
        database.dispose()


def test_retention_deletes_exactly_what_is_past_its_bound(fresh_url: str, tmp_path: Path) -> None:
    run_property(fresh_url, tmp_path, examples=40 if "sqlite" in fresh_url else 20)


def test_no_transaction_deletes_more_than_the_batch_and_a_run_stops_at_max_batches(
    fresh_url: str, tmp_path: Path
) -> None:
    database = Database(make_settings(tmp_path, fresh_url))
    deletes: list[int] = []

    @event.listens_for(database.engine, "before_cursor_execute")
    def watch(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM AUDIT_LOG"):
            deletes.append(len(params))

    with database.session() as db:
        build_world(db)
        populate(db, [], [], [24 * 10] * 10)
        policy = RetentionPolicy({"audit": 1}, batch_size=3, max_batches=2)
        first = purge(db, now=NOW, policy=policy)
        assert first.deleted["audit"] == 6 and first.unfinished
        assert count(db, AuditEntry) == 4
        second = purge(db, now=NOW, policy=policy)  # 3, then 1: done
        assert second.deleted["audit"] == 4 and not second.unfinished
        assert second.batches == 2
        assert count(db, AuditEntry) == 0
        # No time left: nothing is done, and the run says it is unfinished.
        populate(db, [], [], [24 * 10] * 2)
        starved = purge(db, now=NOW, policy=RetentionPolicy({"audit": 1}, 3, 2, time_budget_s=0))
        assert starved.unfinished and starved.total == 0
        assert count(db, AuditEntry) == 2
    assert deletes and max(deletes) <= 3
    database.dispose()


def test_the_duty_counts_what_it_deleted_in_metrics(fresh_sqlite_url: str, tmp_path: Path) -> None:
    settings_ = make_settings(tmp_path, fresh_sqlite_url, retention_audit_days=1)
    database = Database(settings_)
    with database.session() as db:
        build_world(db)
        db.add(AuditEntry(at=datetime.now(UTC) - timedelta(days=3), actor="x", action="old",
                          target_type="t", target_id="1"))  # fmt: skip
        db.commit()
    before = REGISTRY.get_sample_value("parking_retention_deleted_total", {"kind": "audit"}) or 0
    duties = Duties(database, settings_)
    duties.run_once()
    assert duties.last_retention is not None
    assert duties.last_retention.deleted["audit"] == 1
    after = REGISTRY.get_sample_value("parking_retention_deleted_total", {"kind": "audit"})
    assert after == before + 1
    # Not due again before retention_interval_s.
    first = duties.last_retention
    duties.run_once()
    assert duties.runs == 2 and duties.last_retention is first
    database.dispose()


def test_retention_settings_are_bounded_and_empty_means_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARKING_RETENTION_EVENTS_DAYS", "")
    monkeypatch.setenv("PARKING_RETENTION_AUDIT_DAYS", "0")
    monkeypatch.setenv("PARKING_SNAPSHOT_RETENTION_DAYS", "7")  # the old name still counts
    loaded = Settings()
    assert loaded.retention_days("events") == loaded.retention_days("audit") == 0
    assert loaded.retention_days("snapshots") == 7
    assert loaded.retention_days("payments") == 3650
    policy = RetentionPolicy.from_settings(loaded)
    assert policy.cutoff("events", NOW) is None
    assert policy.cutoff("sessions", NOW) == NOW - timedelta(days=730)
    monkeypatch.setenv("PARKING_RETENTION_SNAPSHOTS_DAYS", "3")  # the new name wins
    assert Settings().retention_days("snapshots") == 3
    for bad in ("-1", "36501", "many"):
        monkeypatch.setenv("PARKING_RETENTION_SESSIONS_DAYS", bad)
        with pytest.raises(ValidationError):
            Settings()
    monkeypatch.delenv("PARKING_RETENTION_SESSIONS_DAYS")
    for name, bad in (("BATCH_SIZE", "0"), ("BATCH_SIZE", "100001"), ("INTERVAL_S", "0")):
        monkeypatch.setenv(f"PARKING_RETENTION_{name}", bad)
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.delenv(f"PARKING_RETENTION_{name}")

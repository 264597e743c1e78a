"""``parking-central migrate-sqlite``: a SQLite database filled by the app itself, copied into a
real PostgreSQL; verified, re-runnable, and all-or-nothing on bad input."""

from __future__ import annotations

import base64
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from app.central.cli import main
from app.central.core.events import PlateEvent
from app.central.core.lots import ensure_lot
from app.central.db import Base, Database
from app.central.lists.service import add_list_entry, add_subscription
from app.central.main import create_app
from app.central.migrate import head_revision, upgrade
from app.central.migrate_sqlite import MigrationError, migrate_sqlite, table_checksums
from app.central.operators.models import Operator
from app.central.operators.service import create_operator
from app.central.sessions.models import ParkingSession
from app.central.settings import Settings
from support.pg import PgCluster, free_port
from tests.conftest import PASSWORD, World, build_world, event_body, make_settings, token

BIN = Path(sys.executable).parent
NOW = datetime.now(UTC).replace(microsecond=0)
ENTRIES = 40
# Every table the fixture below fills through the app (tables added later start empty).
FILLED = [
    "lots",
    "audit_log",
    "operators",
    "cameras",
    "tariffs",
    "list_entries",
    "subscriptions",
    "parking_sessions",
    "anomalies",
    "plate_events",
    "snapshots",
]


def jpeg(n: int) -> str:
    raw = b"\xff\xd8\xff\xe0" + bytes([n % 256]) * (200 + n) + b"\xff\xd9"
    return base64.b64encode(raw).decode()


def fill(settings: Settings, database: Database) -> World:
    """A month of a lot's life through the app's own services and API."""
    with database.session() as db:
        world = build_world(db, capacity=200)
        ensure_lot(db, lot_id="lot-q1", name="Bãi xe Quận 1 — tầng hầm", capacity=30)
        add_list_entry(
            db, plate="29A-000.01", kind="deny", lot_id=None, reason="stolen", expires_at=None
        )
        add_list_entry(
            db,
            plate="51F-999.99",
            kind="allow",
            lot_id="lot-a",
            reason="ambulance",
            expires_at=NOW + timedelta(days=30),
        )
        add_subscription(
            db,
            plate="51F-300.01",
            lot_id="lot-a",
            holder="Nguyễn Văn A",
            valid_from=NOW - timedelta(days=10),
            valid_until=NOW + timedelta(days=20),
        )
        create_operator(db, username="night-guard", password=PASSWORD, role="guard")
        db.commit()
    app = create_app(settings, database=database, run_duties=False)
    with TestClient(app) as client:
        manager, admin = token(client, "manager"), token(client, "admin")
        entry = {"X-API-Key": world.entry_key}
        exit_ = {"X-API-Key": world.exit_key}
        for i in range(ENTRIES):
            at = NOW - timedelta(hours=ENTRIES - i, microseconds=i * 37)
            body = event_body("lane-in", f"51F-{300 + i:03d}.{i:02d}", at=at)
            if i % 3 == 0:
                body["snapshot_b64"] = jpeg(i)
            if i % 5 == 0:
                body["candidates"] = [{"plate": f"51F-{300 + i:03d}.{i:02d}", "confidence": 0.5}]
            assert client.post("/api/v1/events", json=body, headers=entry).status_code == 200
        # Half of them leave (closed sessions with fees), the rest stay parked.
        batch = [
            event_body("lane-out", f"51F-{300 + i:03d}.{i:02d}", at=NOW - timedelta(minutes=i))
            for i in range(0, ENTRIES, 2)
        ]
        answer = client.post("/api/v1/events/batch", json={"events": batch}, headers=exit_)
        assert answer.status_code == 200, answer.text
        # A car leaving that never entered, a denied plate: anomalies.
        for plate in ("30K-111.11", "29A-000.01"):
            client.post("/api/v1/events", json=event_body("lane-out", plate), headers=exit_)
        client.post("/api/v1/events", json=event_body("lane-in", "29A-000.01"), headers=entry)
        heartbeat = {"sent_at": NOW.isoformat(), "fps": 4.5, "captured_total": 45}
        client.post("/api/v1/cameras/lane-in/heartbeat", json=heartbeat, headers=entry)
        # Operators at work: a plate corrected, an anomaly resolved, a guard disabled.
        sessions = client.get("/api/v1/sessions", headers=manager).json()
        fix = {"plate": "51F-388.88", "reason": "misread 8 as 3"}
        assert client.patch(f"/api/v1/sessions/{sessions[0]['id']}", json=fix, headers=manager)
        anomalies = client.get("/api/v1/anomalies", headers=manager).json()
        assert anomalies, "the source has anomalies"
        note = {"note": "guard checked the ticket"}
        client.post(f"/api/v1/anomalies/{anomalies[0]['id']}/resolve", json=note, headers=manager)
        client.patch("/api/v1/users/night-guard", json={"active": False}, headers=admin)
    return world


@dataclass
class Source:
    path: Path
    url: str
    checksums: dict[str, tuple[int, str]]
    entry_key: str

    def enter(self, url: str, plate: str) -> dict[str, object]:
        """One more car through the real API of a central on ``url``."""
        settings = make_settings(self.path.parent, url)
        database = Database(settings)
        try:
            app = create_app(settings, database=database, run_duties=False)
            with TestClient(app) as client:
                answer = client.post(
                    "/api/v1/events",
                    json=event_body("lane-in", plate),
                    headers={"X-API-Key": self.entry_key},
                )
                assert answer.status_code == 200, answer.text
                result: dict[str, object] = answer.json()
                return result
        finally:
            database.dispose()


def _checksums(url: str) -> dict[str, tuple[int, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return table_checksums(conn)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def source_template(tmp_path_factory: pytest.TempPathFactory) -> Source:
    data_dir = tmp_path_factory.mktemp("sqlite-source")
    path = data_dir / "parking.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    settings = make_settings(data_dir, url)
    database = Database(settings)
    world = fill(settings, database)
    database.dispose()
    sums = _checksums(url)
    empty = [name for name in FILLED if sums[name][0] == 0]
    assert not empty, f"the source should fill these tables too: {empty}"
    return Source(path, url, sums, world.entry_key)


@pytest.fixture
def source(source_template: Source, tmp_path: Path) -> Source:
    """This test's own copy of the filled SQLite file."""
    path = tmp_path / "parking.db"
    shutil.copy(source_template.path, path)
    return Source(
        path, f"sqlite:///{path}", dict(source_template.checksums), source_template.entry_key
    )


@pytest.fixture
def empty_pg(pg: PgCluster) -> str:
    """A PostgreSQL database with no schema at all."""
    return pg.create_database(f"m_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def pg_engine(empty_pg: str) -> Iterator[Engine]:
    engine = create_engine(empty_pg)
    yield engine
    engine.dispose()


def migrate(
    capsys: pytest.CaptureFixture[str], path: Path | str, url: str, *extra: str
) -> tuple[int, str, str]:
    code = main(["migrate-sqlite", str(path), "--to", url, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def tables_in(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        return set(rows)


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


def test_the_console_script_copies_everything_and_verifies_it(
    source: Source, empty_pg: str, pg_engine: Engine
) -> None:
    result = subprocess.run(
        [str(BIN / "parking-central"), "migrate-sqlite", str(source.path), "--to", empty_pg],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The target was migrated from nothing by Alembic, then filled.
    with pg_engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
    # Progress on stderr, one verified line per table on stdout.
    for name, (rows, digest) in source.checksums.items():
        assert f"{name} " in result.stderr
        assert f"verified {name:<18} {rows:>9} rows  sha256-sum {digest[:16]}" in result.stdout
    assert _checksums(empty_pg) == source.checksums


def test_values_survive_the_copy_as_the_app_reads_them(
    source: Source, empty_pg: str, pg_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(capsys, source.path, empty_pg)[0] == 0
    src = create_engine(source.url)
    try:
        for model, key in ((ParkingSession, ParkingSession.id), (PlateEvent, PlateEvent.event_id)):
            query = select(model).order_by(key)
            with src.connect() as a, pg_engine.connect() as b:
                left = [tuple(r) for r in a.execute(query.with_only_columns(*model.__table__.c))]
                right = [tuple(r) for r in b.execute(query.with_only_columns(*model.__table__.c))]
            assert left == right
        with pg_engine.connect() as conn:
            # SQL NULL stays SQL NULL (a camera that never sent a heartbeat), JSON stays JSON.
            rows = conn.execute(text("SELECT id, last_health::text FROM cameras")).all()
            health: dict[str, str | None] = {row[0]: row[1] for row in rows}
            assert health["lane-out"] is None
            assert '"fps": 4.5' in (health["lane-in"] or "")
            name = conn.scalar(text("SELECT name FROM lots WHERE id = 'lot-q1'"))
            assert name == "Bãi xe Quận 1 — tầng hầm"
            jpegs = conn.execute(text("SELECT jpeg FROM snapshots")).scalars().all()
            assert all(bytes(j).startswith(b"\xff\xd8\xff") for j in jpegs)
    finally:
        src.dispose()


def test_ids_continue_after_the_copied_ones(
    source: Source, empty_pg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(capsys, source.path, empty_pg)[0] == 0
    database = Database(make_settings(tmp_path, empty_pg))
    with database.session() as db:
        top_operator = db.scalar(select(func.max(Operator.id))) or 0
        top_session = db.scalar(select(func.max(ParkingSession.id))) or 0
        new = create_operator(db, username="after-migration", password=PASSWORD, role="guard")
        db.commit()
        assert new.id == top_operator + 1
    database.dispose()
    # A new car through the real ingest path on PostgreSQL opens the next session id.
    assert source.enter(empty_pg, "77C-123.45")["session_id"] == top_session + 1


def test_a_second_run_changes_nothing_and_a_later_one_copies_only_new_rows(
    source: Source, empty_pg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    derived = {t.name for t in Base.metadata.sorted_tables if t.info.get("derived")}
    assert derived == {"lot_occupancy"}
    total = sum(rows for name, (rows, _) in source.checksums.items() if name not in derived)
    code, _, err = migrate(capsys, source.path, empty_pg, "--batch-size", "7")
    assert code == 0, err
    assert f"{total} rows copied, 0 already there" in err
    code, _, err = migrate(capsys, source.path, empty_pg)
    assert code == 0, err
    assert f"0 rows copied, {total} already there" in err
    assert _checksums(empty_pg) == source.checksums
    # The old central took one more car before it was stopped: only that car's rows are new.
    source.enter(source.url, "77C-555.55")
    grown = _checksums(source.url)
    new_rows = sum(rows for name, (rows, _) in grown.items() if name not in derived) - total
    assert new_rows >= 2, "an event row and a session row at least"
    code, _, err = migrate(capsys, source.path, empty_pg)
    assert code == 0, err
    assert f"{new_rows} rows copied, {total} already there" in err
    assert _checksums(empty_pg) == grown


def test_a_target_row_that_differs_is_refused_and_nothing_is_copied(
    source: Source, empty_pg: str, pg_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(capsys, source.path, empty_pg)[0] == 0
    with pg_engine.begin() as conn:
        conn.execute(text("UPDATE lots SET capacity = capacity + 1 WHERE id = 'lot-q1'"))
    before = _checksums(empty_pg)
    # The source gained rows in later tables: none of them may land.
    with sqlite3.connect(source.path) as db:
        db.execute(
            "INSERT INTO audit_log (at, actor, action, target_type, target_id, reason, details)"
            " VALUES ('2026-11-01 10:00:00.000000', 'x', 'y', 'z', '1', '', '{}')"
        )
    code, _, err = migrate(capsys, source.path, empty_pg)
    assert code == 3
    assert "table lots" in err
    assert "lot-q1" in err
    assert _checksums(empty_pg) == before


def test_target_rows_the_source_lacks_are_refused(
    source: Source, empty_pg: str, pg_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(capsys, source.path, empty_pg)[0] == 0
    with pg_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tariffs (lot_id, vehicle_type, free_minutes, hourly_rate, daily_cap,"
                " overnight_fee) VALUES ('lot-q1', 'car', 0, 1, 1, 0)"
            )
        )
    before = _checksums(empty_pg)
    code, _, err = migrate(capsys, source.path, empty_pg)
    assert code == 3
    assert "table tariffs: the target holds 1 row(s) that the source does not have" in err
    assert _checksums(empty_pg) == before


def test_a_unique_key_clash_with_another_target_row_is_a_conflict(
    source: Source, fresh_pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A central already ran on the target: operator "admin" exists there with another id.
    engine = create_engine(fresh_pg_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO operators (id, username, password_hash, role, active, created_at)"
                " VALUES (9000, 'admin', 'x', 'admin', true, now())"
            )
        )
    code, _, err = migrate(capsys, source.path, fresh_pg_url)
    assert code == 3
    assert "table operators" in err
    assert "uq_operators_username" in err
    assert row_counts(engine)["operators"] == 1
    assert sum(row_counts(engine).values()) == 1
    engine.dispose()


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        # SQLite does not enforce VARCHAR lengths; PostgreSQL does.
        (
            "UPDATE plate_events SET plate = 'XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX' WHERE rowid = 5",
            "table plate_events: PostgreSQL refused a source row: value too long",
        ),
        # SQLite stores whatever text it is given in a timestamp column.
        (
            "UPDATE snapshots SET created_at = 'last tuesday' WHERE rowid = 2",
            "table snapshots: a row cannot be read",
        ),
    ],
    ids=["too-long", "unreadable"],
)
def test_a_bad_source_row_rolls_back_every_table(
    source: Source,
    empty_pg: str,
    pg_engine: Engine,
    capsys: pytest.CaptureFixture[str],
    spoil: str,
    message: str,
) -> None:
    # The bad row is in one of the last tables: every table before it was already copied.
    with sqlite3.connect(source.path) as db:
        assert db.execute(spoil).rowcount == 1
    code, _, err = migrate(capsys, source.path, empty_pg)
    assert code == 2
    assert message in err
    assert set(row_counts(pg_engine).values()) == {0}, "no table keeps a partial copy"


def test_the_checksum_sees_a_one_microsecond_change(
    source: Source, empty_pg: str, pg_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(capsys, source.path, empty_pg)[0] == 0
    with pg_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE plate_events SET captured_at = captured_at + interval '1 microsecond'"
                " WHERE event_id = (SELECT event_id FROM plate_events LIMIT 1)"
            )
        )
    after = _checksums(empty_pg)
    assert after["plate_events"][0] == source.checksums["plate_events"][0]
    assert after["plate_events"][1] != source.checksums["plate_events"][1]
    assert {k: v for k, v in after.items() if k != "plate_events"} == {
        k: v for k, v in source.checksums.items() if k != "plate_events"
    }


def test_a_central_writing_to_the_target_makes_it_wait_then_give_up(
    source: Source, fresh_pg_url: str
) -> None:
    # A central pointed at the target is in the middle of a write (holds ROW EXCLUSIVE).
    with psycopg.connect(fresh_pg_url.replace("+psycopg", "")) as writer:
        writer.execute("UPDATE cameras SET online = online")
        with pytest.raises(MigrationError, match="the target's tables are busy") as refused:
            migrate_sqlite(source.path, fresh_pg_url, lock_timeout_s=1)
        writer.rollback()
    assert refused.value.exit_code == 2
    assert sum(row_counts_at(fresh_pg_url).values()) == 0
    # Once it is gone, the copy goes through.
    report = migrate_sqlite(source.path, fresh_pg_url, lock_timeout_s=1)
    assert report.copied + report.derived == sum(rows for rows, _ in source.checksums.values())
    assert report.derived == source.checksums["lot_occupancy"][0] > 0


def row_counts_at(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        return row_counts(engine)
    finally:
        engine.dispose()


def _sqlite_at_other_revision(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '0000'")
    return path


def _text_file(path: Path) -> Path:
    path.write_text("plate,time\n51F-123.45,now\n" * 100)
    return path


def _no_schema(path: Path) -> Path:
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    return path


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda p: p.with_name("missing.db"), "missing.db: no such file"),
        (lambda p: p.parent, "not a file"),
        (_text_file, "not a SQLite database"),
        (_no_schema, "not a parking-central database (no alembic_version table)"),
        (_sqlite_at_other_revision, "the source is at Alembic revision 0000, this code at"),
    ],
    ids=["missing", "directory", "not-sqlite", "no-schema", "other-revision"],
)
def test_bad_source_is_refused_before_the_target_is_touched(
    source: Source,
    empty_pg: str,
    pg_engine: Engine,
    capsys: pytest.CaptureFixture[str],
    spoil: object,
    message: str,
) -> None:
    assert callable(spoil)
    code, _, err = migrate(capsys, spoil(source.path), empty_pg)
    assert code == 2
    assert message in err
    assert err.startswith("error: ")
    assert tables_in(pg_engine) == set(), "the target keeps no schema from a refused run"


def test_unreachable_or_wrong_targets_are_clear_errors(
    source: Source, pg: PgCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = f"postgresql+psycopg://parking:s3cret@127.0.0.1:{free_port()}/parking"
    code, _, err = migrate(capsys, source.path, closed)
    assert code == 2
    assert "cannot connect to the target" in err
    assert "s3cret" not in err
    code, _, err = migrate(capsys, source.path, pg.url("no_such_database"))
    assert code == 2
    assert "cannot connect to the target" in err
    assert 'database "no_such_database" does not exist' in err
    code, _, err = migrate(capsys, source.path, "sqlite:////tmp/other.db")
    assert code == 2
    assert "--to must be a PostgreSQL URL" in err
    code, _, err = migrate(capsys, source.path, "not a url")
    assert code == 2
    assert "is not a database URL" in err


def test_a_target_at_an_unknown_revision_is_refused(
    source: Source, fresh_pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(fresh_pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    code, _, err = migrate(capsys, source.path, fresh_pg_url)
    assert code == 2
    assert "at Alembic revision 9999, which this code does not know" in err

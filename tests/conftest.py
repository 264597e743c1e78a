"""Fixtures that build real things: a throwaway PostgreSQL cluster, migrated databases on
SQLite and PostgreSQL, the real app. Tests are isolated by a rolled-back transaction each
(``db`` / ``client``) or, where real commits matter (concurrency), a fresh database each
(``fresh_url``)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.central.cameras.service import create_camera
from app.central.core.lots import ensure_lot
from app.central.db import Database
from app.central.deps import db_session
from app.central.main import create_app
from app.central.migrate import upgrade
from app.central.operators import service as operators_service
from app.central.settings import Settings
from app.central.tariffs.service import put_tariff
from support.pg import PgCluster

BACKENDS = ["sqlite", "postgres"]
PASSWORD = "correct-horse-battery"


# Production's argon2id parameters (64 MiB, 3 passes: ~0.2 s a hash on this machine kind)
# were paid by most tests, three times for a world's operators and once per login. Tests in
# this process hash with the cheapest argon2id instead (argon2 verifies a hash with the
# parameters written in it, so hashes made either way still verify); a central started as its
# own process, and tests marked ``real_password_hashing``, keep production's.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CHEAP_DUMMY_HASH = CHEAP_HASHER.hash("not-a-password")


@pytest.fixture(autouse=True)
def _cheap_password_hashing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("real_password_hashing") is None:
        monkeypatch.setattr(operators_service, "_hasher", CHEAP_HASHER)
        monkeypatch.setattr(operators_service, "_DUMMY_HASH", CHEAP_DUMMY_HASH)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    cluster = PgCluster().init()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parking")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture(scope="session")
def pg_template(pg: PgCluster) -> str:
    """A migrated PostgreSQL database, never connected to, that ``CREATE DATABASE`` copies."""
    url = pg.create_database("parking_template")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_template(workdir: Path) -> Path:
    path = workdir / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def fresh_pg_url(pg: PgCluster, pg_template: str) -> str:
    """A PostgreSQL database of this test's own (real commits), at head."""
    return pg.create_database(f"t_{uuid.uuid4().hex[:12]}", template="parking_template")


@pytest.fixture
def fresh_sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "parking.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def fresh_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A database of this test's own on the current backend."""
    url: str = request.getfixturevalue(f"fresh_{'pg' if backend == 'postgres' else 'sqlite'}_url")
    return url


@pytest.fixture(scope="session")
def shared_database(
    backend: str, workdir: Path, request: pytest.FixtureRequest
) -> Iterator[Database]:
    """The migrated database that ``db``/``client`` tests share, isolated by rollback."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'shared.db'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg")
        url = cluster.create_database("parking_shared")
    upgrade(url)
    database = Database(Settings(database_url=url, data_dir=workdir))
    yield database
    database.dispose()


def make_settings(data_dir: Path, url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": url,
        "log_json": False,
        "camera_rate_per_s": 10_000,
        "camera_burst": 10_000,
        "login_attempts_per_min": 1000,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, shared_database: Database) -> Settings:
    return make_settings(tmp_path, shared_database.url)


@pytest.fixture
def db(shared_database: Database) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test; the code under
    test may commit (that commits a savepoint)."""
    connection = shared_database.engine.connect()
    outer = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    session.close()
    outer.rollback()
    connection.close()


@dataclass
class World:
    """A lot with an entry and an exit lane, a tariff and one operator per role."""

    lot_id: str
    entry_key: str
    exit_key: str
    users: dict[str, str]


def build_world(db: Session, *, capacity: int = 10, overnight_fee: int = 0) -> World:
    """No overnight fee unless asked: most tests replay stays that end at the real "now",
    and a stay of a few hours run near local midnight would cross it and owe a night (the
    lane-loop tests failed at 17:00 UTC). Tests of the overnight fee use fixed times."""
    ensure_lot(db, lot_id="lot-a", name="Lot A", capacity=capacity)
    put_tariff(
        db,
        lot_id="lot-a",
        vehicle_type="car",
        free_minutes=15,
        hourly_rate=20_000,
        daily_cap=150_000,
        overnight_fee=overnight_fee,
    )
    entry, entry_key = create_camera(db, camera_id="lane-in", lot_id="lot-a", direction="entry")
    exit_, exit_key = create_camera(db, camera_id="lane-out", lot_id="lot-a", direction="exit")
    # Installed long ago: tests replay stays of past days (central refuses events captured
    # before their camera was registered).
    entry.created_at = exit_.created_at = datetime.now(UTC) - timedelta(days=60)
    users = {}
    for role in ("guard", "manager", "admin"):
        operators_service.create_operator(db, username=role, password=PASSWORD, role=role)
        users[role] = role
    db.commit()
    return World("lot-a", entry_key, exit_key, users)


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


@pytest.fixture
def client(settings: Settings, shared_database: Database, db: Session) -> Iterator[TestClient]:
    app = create_app(settings, database=shared_database, run_duties=False)

    def transactional() -> Iterator[Session]:
        yield db

    app.dependency_overrides[db_session] = transactional
    with TestClient(app) as test_client:
        yield test_client


def token(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def event_body(
    camera_id: str,
    plate: str,
    *,
    at: datetime | None = None,
    confidence: float = 0.95,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera_id,
        "captured_at": (at or datetime.now(UTC)).isoformat(),
        "plate": plate,
        "confidence": confidence,
        "vehicle_type": "car",
        **extra,
    }

"""While PostgreSQL is down, central answers 503 with Retry-After (never 500), and it
recovers by itself when the database is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.central.db import Database
from app.central.main import create_app
from app.central.migrate import upgrade
from support.pg import PgCluster
from support.server import serving
from tests.conftest import build_world, event_body, make_settings


@pytest.fixture
def own_pg() -> Iterator[PgCluster]:
    """A cluster of this test's own, so stopping it disturbs nobody."""
    cluster = PgCluster().init()
    cluster.start()
    yield cluster
    cluster.destroy()


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_health_503_while_postgres_stopped_and_recovers(own_pg: PgCluster, tmp_path: Path) -> None:
    url = own_pg.create_database("parking")
    upgrade(url)
    settings = make_settings(tmp_path, url, db_pool_timeout_s=1.0)
    database = Database(settings)
    with database.session() as db:
        world = build_world(db)
    app = create_app(settings, database=database, run_duties=False)
    key = {"X-API-Key": world.entry_key}
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        assert http.get("/api/health").status_code == 200
        assert (
            http.post(
                "/api/v1/events", json=event_body("lane-in", "51F-100.01"), headers=key
            ).status_code
            == 200
        )

        own_pg.stop("immediate")
        health = http.get("/api/health")
        assert health.status_code == 503
        assert health.json()["database"].startswith("unreachable")
        assert health.headers["retry-after"] == str(settings.retry_after_s)
        assert http.get("/api/health/ready").status_code == 503
        assert http.get("/api/health/live").status_code == 200  # the process is fine
        refused = http.post("/api/v1/events", json=event_body("lane-in", "51F-100.02"), headers=key)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == str(settings.retry_after_s)
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "parking_db_up 0.0" in metrics.text

        own_pg.start()
        wait_for(lambda: http.get("/api/health").status_code == 200)
        assert http.get("/api/health/ready").json()["status"] == "ready"
        retried = http.post("/api/v1/events", json=event_body("lane-in", "51F-100.02"), headers=key)
        assert retried.status_code == 200, retried.text
    database.dispose()


def test_multi_host_url_finds_the_writable_server(own_pg: PgCluster, tmp_path: Path) -> None:
    """A dead host listed first is skipped: libpq tries the next one (as with Patroni)."""
    own_pg.create_database("parking")
    from support.pg import free_port

    dead = free_port()
    url = (
        f"postgresql+psycopg://postgres@/parking?host=127.0.0.1:{dead}"
        f"&host=127.0.0.1:{own_pg.port}&target_session_attrs=read-write"
    )
    upgrade(url)
    database = Database(make_settings(tmp_path, url))
    database.ping()
    database.dispose()

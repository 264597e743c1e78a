"""/api/health/ready against the schema: at this release's head or ahead of it (a newer
release's backward-compatible migrations: a rolling upgrade's first half, a rollback) is ready;
behind it (this release's migrations have not run) is not."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import text

from app.central.db import Database
from app.central.main import create_app
from app.central.migrate import head_revision, known_revisions
from support.server import serving
from tests.conftest import make_settings


def test_ready_at_head_and_ahead_but_not_behind(fresh_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fresh_url)
    database = Database(settings)
    head = head_revision()
    assert head is not None and "0001" in known_revisions() and head in known_revisions()

    def at(revision: str) -> None:
        with database.session() as db:
            db.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
            db.commit()

    app = create_app(settings, database=database, run_duties=False)
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        ready = http.get("/api/health/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "revision": head}

        at("9999_from_a_newer_release")  # what a rollback finds: not downgraded
        ahead = http.get("/api/health/ready")
        assert ahead.status_code == 200, ahead.text
        assert ahead.json()["status"] == "ready"
        assert head in ahead.json()["schema"]

        at("0001")  # a known revision below head: this release's migrations did not run
        behind = http.get("/api/health/ready")
        assert behind.status_code == 503
        assert behind.json()["reason"] == "migrations not at head"
        at(head)
    database.dispose()

"""Alembic migrations run up and down on both backends and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.central import models  # noqa: F401 - every table on Base.metadata
from app.central.db import Base
from app.central.migrate import downgrade, head_revision, upgrade


def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    assert "plate_events" in inspect(engine).get_table_names()
    downgrade(fresh_url, "base")
    assert "plate_events" not in inspect(engine).get_table_names()
    upgrade(fresh_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"

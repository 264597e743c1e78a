"""lot occupancy: each lot's open sessions as one counter row, kept by the database itself

The ledger checked a lot's room by counting its open sessions (up to the capacity) on every
batch of entries: a scan that grows with the lot. The count now lives in ``lot_occupancy``,
kept in the same transaction as every change to ``parking_sessions`` by triggers, so no code
path (ingest, the operators' services, retention, erasure, a hand-written UPDATE) can leave
it wrong. PostgreSQL: statement-level triggers over transition tables (one counter update per
statement and lot, whatever the number of rows). SQLite: row-level triggers.

A later migration that rebuilds ``parking_sessions`` on SQLite (``batch_alter_table`` copies the
table) drops these triggers with the old table and must create them again
(``tests/integration/test_lot_occupancy.py`` fails when they are missing).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BACKFILL = """
INSERT INTO lot_occupancy (lot_id, open_sessions)
SELECT lots.id, (SELECT count(*) FROM parking_sessions s
                 WHERE s.lot_id = lots.id AND s.status = 'open')
FROM lots
"""

# Every lot has its counter row from its creation on (a trigger on ``lots``), so the session
# triggers only add to it, and the table's content is the same on both backends whatever their
# history (``migrate-sqlite`` compares it).
_PG_LOT = "INSERT INTO lot_occupancy (lot_id, open_sessions) VALUES (NEW.id, 0); RETURN NULL"
_SQLITE_LOT = "INSERT OR IGNORE INTO lot_occupancy (lot_id, open_sessions) VALUES (NEW.id, 0);"

# PostgreSQL: one function per event (a transition table exists only for its own event). Two
# transactions that change the same lots' counters wait for each other; should they deadlock
# (several lots, in opposite orders), PostgreSQL aborts one and ``ingest_many`` replays it.
_PG_DELTA = """
UPDATE lot_occupancy SET open_sessions = open_sessions + changed.d
FROM (SELECT lot_id, sum(d) AS d FROM ({rows}) AS changes GROUP BY lot_id HAVING sum(d) <> 0
     ) AS changed
WHERE lot_occupancy.lot_id = changed.lot_id
"""
_PG_ROWS = {
    "insert": "SELECT lot_id, 1 AS d FROM new_rows WHERE status = 'open'",
    "update": (
        "SELECT lot_id, 1 AS d FROM new_rows WHERE status = 'open' "
        "UNION ALL SELECT lot_id, -1 FROM old_rows WHERE status = 'open'"
    ),
    "delete": "SELECT lot_id, -1 AS d FROM old_rows WHERE status = 'open'",
}
_PG_REFERENCING = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
}

# SQLite: per row.
_SQLITE_PLUS = """
    UPDATE lot_occupancy SET open_sessions = open_sessions + 1 WHERE lot_id = NEW.lot_id;
"""
_SQLITE_MINUS = """
    UPDATE lot_occupancy SET open_sessions = open_sessions - 1 WHERE lot_id = OLD.lot_id;
"""
_SQLITE_TRIGGERS = {
    "lot_occupancy_lot": ("AFTER INSERT ON lots", _SQLITE_LOT),
    "lot_occupancy_insert": (
        "AFTER INSERT ON parking_sessions WHEN NEW.status = 'open'",
        _SQLITE_PLUS,
    ),
    "lot_occupancy_update_minus": (
        "AFTER UPDATE OF status, lot_id ON parking_sessions "
        "WHEN OLD.status = 'open' AND (NEW.status IS NOT 'open' OR NEW.lot_id IS NOT OLD.lot_id)",
        _SQLITE_MINUS,
    ),
    "lot_occupancy_update_plus": (
        "AFTER UPDATE OF status, lot_id ON parking_sessions "
        "WHEN NEW.status = 'open' AND (OLD.status IS NOT 'open' OR NEW.lot_id IS NOT OLD.lot_id)",
        _SQLITE_PLUS,
    ),
    "lot_occupancy_delete": (
        "AFTER DELETE ON parking_sessions WHEN OLD.status = 'open'",
        _SQLITE_MINUS,
    ),
}


def upgrade() -> None:
    op.create_table(
        "lot_occupancy",
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("open_sessions", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["lots.id"], name=op.f("fk_lot_occupancy_lot_id_lots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("lot_id", name=op.f("pk_lot_occupancy")),
    )
    op.execute(_BACKFILL)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION lot_occupancy_lot() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{_PG_LOT}; END $$"
        )
        op.execute(
            "CREATE TRIGGER lot_occupancy_lot AFTER INSERT ON lots FOR EACH ROW "
            "EXECUTE FUNCTION lot_occupancy_lot()"
        )
        for event, rows in _PG_ROWS.items():
            function = f"lot_occupancy_{event}"
            op.execute(
                f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"{_PG_DELTA.format(rows=rows)}; RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {function} AFTER {event.upper()} ON parking_sessions "
                f"REFERENCING {_PG_REFERENCING[event]} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {function}()"
            )
    else:
        for name, (when, body) in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in _PG_ROWS:
            op.execute(f"DROP TRIGGER lot_occupancy_{event} ON parking_sessions")
            op.execute(f"DROP FUNCTION lot_occupancy_{event}()")
        op.execute("DROP TRIGGER lot_occupancy_lot ON lots")
        op.execute("DROP FUNCTION lot_occupancy_lot()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("lot_occupancy")

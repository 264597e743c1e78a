"""``bulk.insert_rows`` stores every kind of column value exactly as the ORM's own binding
(a Core ``insert(table)``) does, on SQLite and PostgreSQL: two twin tables, the same rows, one
written each way, read back alike (values, SQL NULLs and JSON ``null``s, defaults)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    create_engine,
    event,
    insert,
    select,
    text,
)

from app.central.bulk import insert_rows
from app.central.types import UTCDateTime

HANOI = timezone(timedelta(hours=7))


def _twin(metadata: MetaData, name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True),
        Column("at", UTCDateTime),
        Column("naive", DateTime),
        Column("words", String(200)),
        Column("big", BigInteger),
        Column("ratio", Float),
        Column("flag", Boolean),
        Column("blob", LargeBinary),
        Column("uid", Uuid),
        Column("doc", JSON),
        Column("listed", JSON, default=list),  # callable default
        Column("state", String(8), default="open"),  # scalar default
        Column("maybe", JSON, default=None),  # default None: SQL NULL, not JSON null
        Column("echo", String(200), default=lambda ctx: ctx.get_current_parameters()["words"]),
    )


ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "at": datetime(2026, 11, 27, 23, 59, 59, 999_999, tzinfo=HANOI),  # another offset
        "naive": datetime(2026, 1, 2, 3, 4, 5, 6),
        "words": "Biển số 51F-123.45 \u2014 \"quoted\" \\ back\\slash 'single' \U0001f697",
        "big": 2**62 + 1,
        "ratio": 0.1,
        "flag": True,
        "blob": b"\x00\xff\x01binary\\x",
        "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "doc": {"a": [1, 2.5, None, "ă"], "b": {"nested": True}, "big": 2**53 + 1},
    },
    {
        "id": 2,
        "at": datetime(2024, 2, 29, 0, 0, tzinfo=UTC),
        "naive": None,
        "words": "",
        "big": -(2**63),
        "ratio": -1e-300,
        "flag": False,
        "blob": b"",
        "uid": uuid.UUID(int=0),
        "doc": [],
    },
    {
        "id": 3,
        "at": None,
        "naive": None,
        "words": None,
        "big": None,
        "ratio": None,
        "flag": None,
        "blob": None,
        "uid": None,
        "doc": "a JSON string",
    },
]


@pytest.fixture
def twins(fresh_url: str) -> Iterator[tuple[Connection, Table, Table]]:
    engine = create_engine(fresh_url)
    metadata = MetaData()
    ours, theirs = _twin(metadata, "bulk_ours"), _twin(metadata, "bulk_orm")
    metadata.create_all(engine)
    with engine.connect() as conn:
        yield conn, ours, theirs
    engine.dispose()


def _read(conn: Connection, table: Table) -> list[tuple[Any, ...]]:
    nulls = [f"{c.name} IS NULL" for c in table.columns if isinstance(c.type, JSON | LargeBinary)]
    raw = conn.execute(text(f"SELECT id, {', '.join(nulls)} FROM {table.name} ORDER BY id"))  # noqa: S608
    values = conn.execute(select(table).order_by(table.c.id))
    return [(*v, *r) for v, r in zip(values, raw, strict=True)]


def test_insert_rows_stores_what_the_orm_binding_stores(
    twins: tuple[Connection, Table, Table],
) -> None:
    conn, ours, theirs = twins
    statements: list[str] = []
    event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
    insert_rows(conn, ours, ROWS)
    conn.execute(insert(theirs), ROWS)
    conn.commit()
    assert _read(conn, ours) == _read(conn, theirs)
    got = {row.id: row for row in conn.execute(select(ours))}
    assert got[1].at == ROWS[0]["at"] and got[1].at.utcoffset() == timedelta(0)
    assert got[1].words == ROWS[0]["words"] and got[1].blob == ROWS[0]["blob"]
    assert got[1].doc == ROWS[0]["doc"] and got[2].big == -(2**63)
    assert got[3].echo is None and got[1].echo == ROWS[0]["words"]
    assert got[1].listed == [] and got[1].state == "open" and got[1].maybe is None
    if conn.dialect.name == "postgresql":  # one statement for all rows, not a fallback
        ours_sql = [s for s in statements if s.startswith("INSERT INTO bulk_ours")]
        assert len(ours_sql) == 1 and "json_populate_recordset" in ours_sql[0]


def test_an_explicit_none_in_a_json_column_is_stored_as_the_orm_stores_it(
    twins: tuple[Connection, Table, Table],
) -> None:
    """SQLAlchemy writes an explicit None in a JSON column as JSON ``null`` (not SQL NULL);
    ``insert_rows`` keeps that (by the executemany it falls back to)."""
    conn, ours, theirs = twins
    rows = [{**ROWS[0], "doc": None, "maybe": None}, {**ROWS[1], "doc": {"k": 1}, "maybe": None}]
    insert_rows(conn, ours, rows)
    conn.execute(insert(theirs), rows)
    assert _read(conn, ours) == _read(conn, theirs)


def test_no_rows_is_no_statement(twins: tuple[Connection, Table, Table]) -> None:
    conn, ours, _ = twins
    statements: list[str] = []
    event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
    insert_rows(conn, ours, [])
    assert statements == []

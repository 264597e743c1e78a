"""Many rows into one table in one statement, as cheaply as the backend allows.

On PostgreSQL the rows travel as one JSON document, bound once:
``INSERT INTO t (cols) SELECT cols FROM json_populate_recordset(NULL::t, :rows)``. The statement
text depends only on the table and the columns given, so the server plans it once per
connection whatever the batch size, and the driver sends one parameter instead of one per value
(a multi-row ``VALUES`` is a new statement for every batch size; an executemany is one round
trip but one executed statement per row). Each value is first bound by its column's own type
(``TypeDecorator.process_bind_param``, e.g. ``UTCDateTime``), then written in the text form
PostgreSQL's input functions read: ISO 8601 timestamps with their offset, UUIDs as text, bytes as
``\\x`` hex, JSON columns as nested JSON. Python-side column defaults (``default=``) are applied
here as a Core INSERT would; omitted columns without one get their server default.

On SQLite (and for rows the JSON form cannot carry faithfully: a non-finite float, or an
explicit None for a JSON column, which SQLAlchemy stores as JSON ``null``) it is a Core
executemany, exactly what ``conn.execute(insert(table), rows)`` does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    JSON,
    Column,
    Connection,
    Dialect,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    insert,
    text,
)
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement, TextClause

_STATEMENTS: dict[tuple[str, tuple[str, ...]], TextClause] = {}


class _Unfaithful(Exception):
    """A value the JSON form would not store as the ORM does."""


class _DefaultContext:
    """What a callable column default sees (``context.get_current_parameters()``)."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = row

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> Mapping[str, Any]:
        return self._row


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column key, all with the same keys) into ``table``."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), list(rows) if len(rows) > 1 else rows[0])
        return
    given = list(rows[0].keys())
    defaulted = [
        c for c in table.columns if c.key not in rows[0] and _python_default(c) is not None
    ]
    columns = [table.columns[k] for k in given] + defaulted
    try:
        document = [_json_row(conn.dialect, columns, row, len(given)) for row in rows]
        payload = json.dumps(document, allow_nan=False, separators=(",", ":"))
    except (_Unfaithful, ValueError):
        conn.execute(insert(table), list(rows))
        return
    conn.execute(_statement(conn.dialect, table, columns), {"rows": payload})


def _python_default(column: Column[Any]) -> Any:
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        return None
    return default


def _statement(dialect: Dialect, table: Table, columns: list[Column[Any]]) -> TextClause:
    key = (table.fullname, tuple(c.key for c in columns))
    statement = _STATEMENTS.get(key)
    if statement is None:
        quote = dialect.identifier_preparer
        name = quote.format_table(table)
        names = ", ".join(quote.format_column(c) for c in columns)
        statement = text(
            f"INSERT INTO {name} ({names}) SELECT {names} "  # noqa: S608 - names from the schema
            f"FROM json_populate_recordset(NULL::{name}, CAST(:rows AS json))"
        )
        _STATEMENTS[key] = statement
    return statement


def _json_row(
    dialect: Dialect, columns: list[Column[Any]], row: Mapping[str, Any], given: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, column in enumerate(columns):
        if i < given:
            value = row[column.key]
            if value is None and _is_json(column) and not _none_as_null(column):
                raise _Unfaithful(column.key)
        else:
            default = column.default
            assert default is not None
            arg = getattr(default, "arg", None)
            value = arg(_DefaultContext(row)) if default.is_callable and arg else arg
        out[column.name] = _json_value(dialect, column, value)
    return out


def _is_json(column: Column[Any]) -> bool:
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    return isinstance(kind, JSON)


def _none_as_null(column: Column[Any]) -> bool:
    return bool(getattr(column.type, "none_as_null", False))


def _json_value(dialect: Dialect, column: Column[Any], value: Any) -> Any:
    if isinstance(column.type, TypeDecorator):
        value = column.type.process_bind_param(value, dialect)
    if value is None or _is_json(column):
        return value  # nested JSON for a JSON column, JSON null for SQL NULL
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unfaithful(column.key)
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    raise _Unfaithful(column.key)


def among(
    column: ColumnElement[Any] | QueryableAttribute[Any], name: str, *, postgresql: bool
) -> ColumnElement[bool]:
    """``column IN (...)`` for a list bound as ``name``. On PostgreSQL ``column = ANY(:name)``
    with the list bound as one array: one statement text, so one plan (the driver prepares it
    after a few uses), whatever the list's length; an expanding IN is a new text, parsed and
    planned again, for every length. Elsewhere an expanding IN."""
    if postgresql:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))

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

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
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
    plan = _plan(conn.dialect, table, tuple(rows[0].keys()))
    try:
        document = [plan.json_row(row) for row in rows]
        # orjson writes a non-finite float as null: the converters refuse those first
        # (``_finite``), and a JSON column's value is the contract's, validated finite.
        payload = orjson.dumps(document).decode()
    except (_Unfaithful, ValueError, TypeError):
        conn.execute(insert(table), list(rows))
        return
    conn.exec_driver_sql(plan.driver_sql, {"rows": payload})


Convert = Callable[[Any], Any]


class _Plan:
    """How rows with these keys become the JSON document: one converter per column, worked
    out once per table and key set (the statement text is per key set anyway)."""

    def __init__(self, dialect: Dialect, table: Table, given: tuple[str, ...]) -> None:
        defaulted = [c for c in table.columns if c.key not in given and _python_default(c)]
        columns = [table.columns[k] for k in given] + defaulted
        self.statement = _statement(dialect, table, columns)
        # The text as the driver takes it (``%(rows)s``), compiled once: executed with
        # ``exec_driver_sql`` it skips SQLAlchemy's per-execution compile-cache look-up and
        # bind processing (one parameter, already a string).
        self.driver_sql = str(self.statement.compile(dialect=dialect))
        # Plain ``str`` names: a column's is SQLAlchemy's ``quoted_name``, a subclass, which
        # orjson refuses as a key.
        self.given = [(c.key, str(c.name), _converter(dialect, c)) for c in columns[: len(given)]]
        self.defaulted = [(c, str(c.name), _converter(dialect, c)) for c in defaulted]

    def json_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = {name: convert(row[key]) for key, name, convert in self.given}
        for column, name, convert in self.defaulted:
            default = column.default
            assert default is not None
            arg = getattr(default, "arg", None)
            out[name] = convert(arg(_DefaultContext(row)) if default.is_callable and arg else arg)
        return out


_PLANS: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}


def _plan(dialect: Dialect, table: Table, given: tuple[str, ...]) -> _Plan:
    key = (dialect.name, table.fullname, given)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _Plan(dialect, table, given)
    return plan


def _python_default(column: Column[Any]) -> Any:
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        return None
    return default


def _statement(dialect: Dialect, table: Table, columns: list[Column[Any]]) -> TextClause:
    quote = dialect.identifier_preparer
    name = quote.format_table(table)
    names = ", ".join(quote.format_column(c) for c in columns)
    return text(
        f"INSERT INTO {name} ({names}) SELECT {names} "  # noqa: S608 - names from the schema
        f"FROM json_populate_recordset(NULL::{name}, CAST(:rows AS json))"
    )


def _converter(dialect: Dialect, column: Column[Any]) -> Convert:
    """The function that turns a value of ``column`` into its JSON form: bound by the
    column's own type first (``TypeDecorator.process_bind_param``); a JSON column's value
    stays nested JSON (an explicit None would be JSON ``null`` to the ORM: not faithful
    unless the type stores None as SQL NULL); None is SQL NULL elsewhere."""
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    bind = column.type.process_bind_param if isinstance(column.type, TypeDecorator) else None
    if isinstance(kind, JSON):
        none_ok = bool(getattr(column.type, "none_as_null", False))

        def as_json(value: Any) -> Any:
            if bind is not None:
                value = bind(value, dialect)
            if value is None and not none_ok:
                raise _Unfaithful(column.key)
            return value

        return as_json

    def as_text(value: Any) -> Any:
        if bind is not None:
            value = bind(value, dialect)
        if value is None:
            return None
        simple = _SIMPLE.get(type(value))
        if simple is not None:
            return simple(value)
        return _json_value(column, value)

    return as_text


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise _Unfaithful("a non-finite float")
    return value


def _same(value: Any) -> Any:
    return value


# Exact types, found with one dict look-up; subclasses go through ``_json_value``.
_SIMPLE: dict[type, Convert] = {
    str: _same,
    int: _same,
    bool: _same,
    float: _finite,
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: time.isoformat,
    UUID: str,
}


def _json_value(column: Column[Any], value: Any) -> Any:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _finite(value)
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

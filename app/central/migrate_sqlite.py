"""Copy an embedded SQLite database into PostgreSQL: ``parking-central migrate-sqlite``.

Order of work (see docs/migrate-sqlite.md):

1. Check every input before writing anything: the source is a readable SQLite database at this
   code's Alembic head, holding every table and column the code expects; the target URL is a
   PostgreSQL URL that accepts a connection and is at a revision this code knows.
2. Migrate the target to head with Alembic (the same migrations as ``parking-central migrate``).
3. In ONE transaction on the target (tables locked against writers): copy every table in
   foreign-key order (a table the database derives itself, ``lot_occupancy``, is rebuilt by the
   target's triggers and only compared), in batches, from one read snapshot of the source;
   reset the id sequences; compare per-table row counts and checksums of both sides; commit only
   if they all match.

Re-running is safe: a source row already in the target and identical is skipped; a row with the
same primary key but other values, a source row that collides with another target row on a
unique key, or a target row the source does not have is a conflict, and the run changes nothing.

The checksum of a table is the sum, modulo 2**256, of the SHA-256 of every row's canonical form
(values normalised: timestamps as UTC ISO strings, UUIDs canonical, booleans, JSON re-encoded
with sorted keys and told apart from SQL NULL, binary by its SHA-256). The sum does not depend
on row order, so the databases' different orderings of text and UUID keys cannot cause false
alarms; any changed, missing or extra row changes it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote
from uuid import UUID

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Table,
    Text,
    cast,
    create_engine,
    event,
    exc,
    func,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import TableClause

from app.central import models  # noqa: F401 - registers every table on Base.metadata
from app.central.clock import as_utc
from app.central.db import Base
from app.central.migrate import alembic_config, head_revision, upgrade

DEFAULT_BATCH = 500
_MOD = 2**256
_SHOWN = 3  # conflicting keys named in a message


class MigrationError(Exception):
    """Bad input: nothing was written. ``exit_code`` is what the CLI returns."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TargetConflict(MigrationError):
    """The target holds data that is not this source's: the copy was rolled back."""

    exit_code = 3


class VerificationFailed(MigrationError):
    """Counts or checksums differ after the copy: the copy was rolled back."""

    exit_code = 4


@dataclass
class TableReport:
    name: str
    rows: int = 0
    copied: int = 0
    skipped: int = 0
    derived: int = 0  # rows the target's triggers wrote (``info["derived"]``), only compared
    checksum: str = ""


@dataclass
class MigrationReport:
    revision: str
    target_was_at: str | None = None
    tables: list[TableReport] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tables)

    @property
    def derived(self) -> int:
        return sum(t.derived for t in self.tables)


class Progress:
    """A progress bar per table on a stream (stderr): redrawn in place on a terminal, one
    line per finished table otherwise (logs, CI)."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.width = width
        self.name = ""
        self.total = 0
        self.done = 0
        self.started = 0.0
        self._drawn = 0.0

    def start(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.started = time.monotonic()
        self._draw(force=True)

    def advance(self, rows: int) -> None:
        self.done += rows
        self._draw()

    def finish(self, note: str) -> None:
        line = self._line()
        if self.tty:
            self.stream.write(f"\r{line}  {note}\n")
        else:
            self.stream.write(f"{line}  {note}\n")
        self.stream.flush()

    def _line(self) -> str:
        filled = self.width if not self.total else self.width * self.done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.started
        return f"{self.name:<18} [{bar}] {self.done:>9}/{self.total:<9} {elapsed:6.1f}s"

    def _draw(self, *, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if force or now - self._drawn >= 0.1:
            self._drawn = now
            self.stream.write("\r" + self._line())
            self.stream.flush()


# --- canonical rows and checksums ------------------------------------------------------------


class _JsonNull:
    """A JSON ``null`` stored as a value (not SQL NULL)."""


JSON_NULL = _JsonNull()


def _is_json(col: Column[Any]) -> bool:
    return isinstance(col.type, JSON)


def _readable(table: Table) -> list[ColumnElement[Any]]:
    """What a SELECT reads: JSON columns as their stored text (so SQL NULL and JSON null stay
    apart), every other column through the model's type (UTC datetimes, UUIDs, booleans)."""
    return [cast(c, Text).label(c.name) if _is_json(c) else c for c in table.columns]


def _row_values(table: Table, raw: Sequence[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for col, value in zip(table.columns, raw, strict=True):
        if _is_json(col) and value is not None:
            loaded = json.loads(value)
            value = JSON_NULL if loaded is None else loaded
        values[col.name] = value
    return values


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if value is JSON_NULL:
        return "json:null"
    if isinstance(value, float):
        return f"float:{value!r}"
    if isinstance(value, datetime):
        return "ts:" + as_utc(value).isoformat(timespec="microseconds")
    if isinstance(value, UUID):
        return f"uuid:{value}"
    if isinstance(value, bytes | bytearray | memoryview):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, dict | list):
        return "json:" + json.dumps(value, sort_keys=True, separators=(",", ":"))
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical_row(values: dict[str, Any]) -> str:
    return json.dumps([[name, _canonical(v)] for name, v in sorted(values.items())])


def _row_hash(canonical: str) -> int:
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest(), "big")


def _hex(total: int) -> str:
    return f"{total:064x}"


def _key(table: Table, values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(values[c.name] for c in table.primary_key.columns)


def _stream(conn: Connection, table: Table, batch: int) -> Iterator[list[dict[str, Any]]]:
    query = select(*_readable(table)).order_by(*table.primary_key.columns)
    result = conn.execution_options(stream_results=True).execute(query)
    try:
        for rows in result.partitions(batch):
            yield [_row_values(table, row) for row in rows]
    except (ValueError, TypeError) as error:  # a malformed timestamp, UUID or JSON text
        raise MigrationError(f"table {table.name}: a row cannot be read: {error}") from error


def table_checksums(conn: Connection, *, batch: int = DEFAULT_BATCH) -> dict[str, tuple[int, str]]:
    """(row count, checksum) of every table, the same way on SQLite and PostgreSQL."""
    sums: dict[str, tuple[int, str]] = {}
    for table in Base.metadata.sorted_tables:
        count, total = 0, 0
        for rows in _stream(conn, table, batch):
            count += len(rows)
            total = (total + sum(_row_hash(canonical_row(r)) for r in rows)) % _MOD
        sums[table.name] = (count, _hex(total))
    return sums


# --- the source ------------------------------------------------------------------------------


def check_source(path: Path) -> str:
    """The source's revision, once it is known to be a SQLite database this code can read."""
    if not path.exists():
        raise MigrationError(f"{path}: no such file")
    if not path.is_file():
        raise MigrationError(f"{path}: not a file")
    try:
        conn = _open_sqlite(path)
    except sqlite3.Error as error:
        raise MigrationError(f"{path}: cannot open as SQLite: {error}") from error
    try:
        try:
            names = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.OperationalError as error:
            raise MigrationError(f"{path}: cannot read it: {error}") from error
        except sqlite3.DatabaseError as error:
            raise MigrationError(f"{path}: not a SQLite database ({error})") from error
        if "alembic_version" not in names:
            raise MigrationError(
                f"{path}: not a parking-central database (no alembic_version table)"
            )
        revisions = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
        head = head_revision()
        if revisions != [head]:
            found = ", ".join(revisions) or "none"
            raise MigrationError(
                f"{path}: the source is at Alembic revision {found}, this code at {head}: "
                f"run `PARKING_DATABASE_URL=sqlite:///{path.resolve()} parking-central migrate` "
                "on a copy of the file with the code that matches, then migrate that copy"
            )
        for table in Base.metadata.sorted_tables:
            if table.name not in names:
                raise MigrationError(f"{path}: table {table.name} is missing at revision {head}")
            have = {r[1] for r in conn.execute(f'PRAGMA table_info("{table.name}")')}
            want = {c.name for c in table.columns}
            if have != want:
                raise MigrationError(
                    f"{path}: table {table.name} has columns {sorted(have)}, "
                    f"revision {head} has {sorted(want)}"
                )
        return head or ""
    finally:
        conn.close()


def _open_sqlite(path: Path) -> sqlite3.Connection:
    """Read-only: the source file is never changed."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=15)
    conn.isolation_level = None  # transactions are begun explicitly (one read snapshot)
    return conn


def _source_engine(path: Path) -> Engine:
    engine = create_engine("sqlite://", creator=lambda: _open_sqlite(path), poolclass=NullPool)

    @event.listens_for(engine, "begin")
    def _snapshot(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")  # every read below sees the same snapshot

    return engine


# --- the target ------------------------------------------------------------------------------


def target_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except exc.ArgumentError as error:
        raise MigrationError(f"--to {raw!r} is not a database URL") from error
    if url.get_backend_name() != "postgresql":
        raise MigrationError(
            f"--to must be a PostgreSQL URL (postgresql+psycopg://...), not {url.drivername}"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # the driver the project installs
    return url


def redacted(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _target_engine(url: URL, connect_timeout_s: int) -> Engine:
    return create_engine(
        url,
        poolclass=NullPool,
        connect_args={"connect_timeout": connect_timeout_s, "application_name": "migrate-sqlite"},
    )


def check_target(engine: Engine, url: URL) -> str | None:
    """The target's current revision (None when empty); refuses one this code does not know."""
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except exc.DBAPIError as error:
        raise MigrationError(
            f"cannot connect to the target {redacted(url)}: {_describe(error)}"
        ) from error
    if current is not None:
        try:
            ScriptDirectory.from_config(alembic_config()).get_revision(current)
        except CommandError as error:
            raise MigrationError(
                f"the target {redacted(url)} is at Alembic revision {current}, which this code "
                f"does not know (newer code migrated it?)"
            ) from error
    return current


# --- the copy --------------------------------------------------------------------------------


def _writer(table: Table) -> TableClause:
    """The INSERT target: like ``table``, but a Python None in a JSON column is SQL NULL and
    ``JSON.NULL`` is JSON null, so both arrive as they were in the source."""
    return sql_table(
        table.name,
        *[
            sql_column(c.name, JSON(none_as_null=True) if _is_json(c) else c.type)
            for c in table.columns
        ],
    )


def _for_insert(values: dict[str, Any]) -> dict[str, Any]:
    return {name: (JSON.NULL if v is JSON_NULL else v) for name, v in values.items()}


def _present(conn: Connection, table: Table, keys: list[tuple[Any, ...]]) -> dict[Any, str]:
    """Canonical form of the target rows that have one of ``keys``."""
    pk = list(table.primary_key.columns)
    where = pk[0].in_([k[0] for k in keys]) if len(pk) == 1 else tuple_(*pk).in_(keys)
    found: dict[Any, str] = {}
    for raw in conn.execute(select(*_readable(table)).where(where)):
        values = _row_values(table, raw)
        found[_key(table, values)] = canonical_row(values)
    return found


def _describe(error: exc.DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig else str(error)


def _copy_table(
    source: Connection,
    target: Connection,
    table: Table,
    *,
    batch: int,
    progress: Progress,
) -> tuple[TableReport, int]:
    report = TableReport(table.name)
    total = source.scalar(select(func.count()).select_from(table)) or 0
    progress.start(table.name, total)
    checksum = 0
    writer = _writer(table)
    for rows in _stream(source, table, batch):
        canon = [canonical_row(r) for r in rows]
        checksum = (checksum + sum(_row_hash(c) for c in canon)) % _MOD
        if table.info.get("derived"):  # the target's triggers write it; the checksums compare it
            report.derived += len(rows)
            report.rows += len(rows)
            progress.advance(len(rows))
            continue
        present = _present(target, table, [_key(table, r) for r in rows])
        fresh, differing = [], []
        for values, form in zip(rows, canon, strict=True):
            key = _key(table, values)
            if key not in present:
                fresh.append(_for_insert(values))
            elif present[key] != form:
                differing.append(key)
        if differing:
            shown = ", ".join(str(k[0] if len(k) == 1 else k) for k in differing[:_SHOWN])
            raise TargetConflict(
                f"table {table.name}: the target already holds at least {len(differing)} "
                f"row(s) with the same key but other values than the source (first: {shown}); "
                "migrate into an empty database, or drop the target's data first"
            )
        if fresh:
            try:
                target.execute(insert(writer), fresh)
            except exc.IntegrityError as error:
                raise TargetConflict(
                    f"table {table.name}: a source row collides with a different row already "
                    f"in the target: {_describe(error)}"
                ) from error
            except exc.DBAPIError as error:
                raise MigrationError(
                    f"table {table.name}: PostgreSQL refused a source row: {_describe(error)}"
                ) from error
        report.copied += len(fresh)
        report.skipped += len(rows) - len(fresh)
        report.rows += len(rows)
        progress.advance(len(rows))
    in_target = target.scalar(select(func.count()).select_from(table)) or 0
    if in_target != report.rows:
        raise TargetConflict(
            f"table {table.name}: the target holds {in_target - report.rows} row(s) that the "
            "source does not have; migrate into an empty database, or drop the target's data first"
        )
    progress.finish(
        f"derived {report.derived}, rebuilt by the target"
        if table.info.get("derived")
        else f"copied {report.copied}, already there {report.skipped}"
    )
    return report, checksum


def _reset_sequences(conn: Connection) -> dict[str, int]:
    """After explicit ids, each table's id sequence continues after its largest id."""
    quote_id = conn.dialect.identifier_preparer.quote
    reset: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        col = table.autoincrement_column
        if col is None:
            continue
        name, column = quote_id(table.name), quote_id(col.name)
        largest = f"SELECT MAX({column}) FROM {name}"  # noqa: S608 - names from the models
        following = conn.scalar(
            text(
                "SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"COALESCE(({largest}), 0) + 1, false)"
            ),
            {"table": name, "column": col.name},
        )
        reset[table.name] = int(following or 1)
    return reset


def _lock(conn: Connection, timeout_s: int) -> None:
    """Keeps writers (a central already pointed at the target) out until the commit."""
    names = ", ".join(conn.dialect.identifier_preparer.quote(t.name) for t in _tables())
    conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout_s)}s'"))
    try:
        conn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
    except exc.OperationalError as error:
        raise MigrationError(
            f"the target's tables are busy (no lock within {timeout_s} s): stop every "
            f"central using it and run again ({_describe(error)})"
        ) from error


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)


@contextmanager
def _engines(path: Path, url: URL, connect_timeout_s: int) -> Iterator[tuple[Engine, Engine]]:
    source, target = _source_engine(path), _target_engine(url, connect_timeout_s)
    try:
        yield source, target
    finally:
        source.dispose()
        target.dispose()


def migrate_sqlite(
    source_path: Path,
    to: str,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    connect_timeout_s: int = 10,
    lock_timeout_s: int = 15,
) -> MigrationReport:
    """Copy ``source_path`` into the database at ``to``; see the module docstring."""
    if batch < 1:
        raise MigrationError("--batch-size must be at least 1")
    progress = progress or Progress()
    url = target_url(to)
    revision = check_source(source_path)
    with _engines(source_path, url, connect_timeout_s) as (source_engine, target_engine):
        report = MigrationReport(revision, target_was_at=check_target(target_engine, url))
        try:
            upgrade(url.render_as_string(hide_password=False))
        except exc.DBAPIError as error:
            raise MigrationError(
                f"cannot migrate the target's schema to {revision}: {_describe(error)}"
            ) from error
        checksums: dict[str, tuple[int, str]] = {}
        with source_engine.connect() as source, target_engine.begin() as target:
            _lock(target, lock_timeout_s)
            for table in _tables():
                table_report, total = _copy_table(
                    source, target, table, batch=batch, progress=progress
                )
                table_report.checksum = _hex(total)
                report.tables.append(table_report)
                checksums[table.name] = (table_report.rows, table_report.checksum)
            report.sequences = _reset_sequences(target)
            _verify(checksums, table_checksums(target, batch=batch))
    return report


def _verify(source: dict[str, tuple[int, str]], target: dict[str, tuple[int, str]]) -> None:
    wrong = [
        f"{name}: source {rows} rows {digest[:12]}, target {target[name][0]} rows "
        f"{target[name][1][:12]}"
        for name, (rows, digest) in source.items()
        if target[name] != (rows, digest)
    ]
    if wrong:
        raise VerificationFailed("verification failed, nothing committed: " + "; ".join(wrong))

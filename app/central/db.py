"""The one place that builds the database engine and sessions.

SQLite (embedded default) and PostgreSQL (production, behind Patroni) share the same models and
migrations. On PostgreSQL the URL may list every Patroni host with
``target_session_attrs=read-write`` so libpq always lands on the current primary; a pooled
connection to a demoted primary is thrown away on first use (see ``is_db_unavailable``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, exc, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.central.settings import Settings

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# SQLSTATE classes that mean "this server cannot take writes right now": connection
# exceptions (08), operator intervention / shutdown (57P), read-only replica (25006),
# too many connections (53300), cannot connect now (57P03).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "25006", "53300", "53400")


def is_db_unavailable(error: BaseException) -> bool:
    """True when the error means the database (not the request) is the problem."""
    if isinstance(error, exc.TimeoutError):  # pool exhausted
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(error, exc.OperationalError | exc.InterfaceError):
            message = str(error.orig).lower()
            # SQLite "database is locked" is load, not an outage, but the answer is the same:
            # try again shortly.
            return sqlstate is None or "locked" in message or "connect" in message
    return False


def lost_a_race(error: BaseException) -> bool:
    """True when the transaction lost to a concurrent one and replaying it may succeed: a
    unique key taken meanwhile, or PostgreSQL's transaction rollback class (40: a
    serialization failure, a deadlock, e.g. two batches updating the same lots' occupancy
    counters in opposite orders)."""
    if isinstance(error, exc.IntegrityError):
        return True
    if isinstance(error, exc.DBAPIError):
        sqlstate = getattr(error.orig, "sqlstate", None)
        return isinstance(sqlstate, str) and sqlstate.startswith("40")
    return False


class Database:
    """Engine + session factory for one database URL."""

    def __init__(self, settings: Settings, *, url: str | None = None, **engine_kw: Any) -> None:
        self.url = url or settings.effective_database_url
        self.is_postgres = self.url.startswith("postgresql")
        self.engine: Engine = _build_engine(self.url, settings, **engine_kw)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(
            self.engine.execution_options(read_only=True), expire_on_commit=False
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessionmaker() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """For work that only reads (health, metrics): on SQLite it never waits for writers."""
        with self._reader() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def ensure_sqlite_dir(url: str) -> None:
    """SQLite cannot create the directory its file lives in."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def tcp_params(settings: Settings) -> dict[str, int]:
    """libpq's TCP settings for every connection central makes to PostgreSQL: keepalive probes
    on an idle link and a bound on unacknowledged data, so a connection whose peer vanished (a
    cut link, a crashed host) fails in seconds instead of hanging for the kernel's minutes or
    hours (a LISTEN that waits for notifications never sends anything to notice it)."""
    return {
        "keepalives": 1,
        "keepalives_idle": settings.db_keepalives_idle_s,
        "keepalives_interval": max(1, settings.db_keepalives_idle_s // 2),
        "keepalives_count": 3,
        "tcp_user_timeout": settings.db_tcp_user_timeout_ms,
    }


def _build_engine(url: str, settings: Settings, **engine_kw: Any) -> Engine:
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 15},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_s,
            **engine_kw,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock at BEGIN so two of them queue instead of failing
            # on a lock upgrade; read-only work (health, metrics) never waits for writers.
            read_only = conn.get_execution_options().get("read_only", False)
            conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

        @event.listens_for(engine, "connect")
        def _sqlite_no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine

    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_s,
            "options": (
                f"-c statement_timeout={settings.db_statement_timeout_ms}"
                " -c idle_in_transaction_session_timeout="
                f"{settings.db_idle_in_transaction_timeout_ms}"
            ),
            "application_name": "parking-central",
            **tcp_params(settings),
        },
        **engine_kw,
    )

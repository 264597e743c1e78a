"""Central's PostgreSQL connections notice a vanished peer and never hold a transaction open:
what the soak found missing (a cut-off central's session kept its locks for hours)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from sqlalchemy import text

from app.central.db import Database, tcp_params
from app.central.live import bridge
from tests.conftest import make_settings


def test_pool_connections_carry_keepalives_a_tcp_bound_and_an_idle_transaction_limit(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path, fresh_pg_url, db_keepalives_idle_s=7, db_tcp_user_timeout_ms=12_000,
        db_idle_in_transaction_timeout_ms=4_000,
    )  # fmt: skip
    db = Database(settings)
    try:
        with db.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            params = raw.info.get_parameters()
            assert params["keepalives"] == "1"
            assert params["keepalives_idle"] == "7"
            assert params["tcp_user_timeout"] == "12000"
            assert conn.scalar(text("SHOW idle_in_transaction_session_timeout")) == "4s"
    finally:
        db.dispose()


def test_a_transaction_left_idle_is_ended_by_the_server(fresh_pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fresh_pg_url, db_idle_in_transaction_timeout_ms=1_000)
    db = Database(settings)
    try:
        conn = db.engine.connect()
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        conn.execute(text("SELECT 1"))  # a transaction begins and is left idle
        pid = raw.info.backend_pid
        # Autocommit: inside a transaction pg_stat_activity is one snapshot.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
            for _ in range(50):
                alive = other.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                )
                if alive == 0:
                    break
                other.execute(text("SELECT pg_sleep(0.1)"))
            assert alive == 0, "the idle transaction's session is still there"
        conn.invalidate()
        conn.close()
    finally:
        db.dispose()


def test_the_live_listener_dials_with_the_same_tcp_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite://", db_keepalives_idle_s=9)
    url = "postgresql+psycopg://u:p@h1:5432/parking?host=h2:5433&keepalives_idle=3"
    info = psycopg.conninfo.conninfo_to_dict(bridge.libpq_conninfo(url, **tcp_params(settings)))
    assert info["keepalives"] == "1"
    assert info["keepalives_idle"] == "3", "what the URL says wins"
    assert info["tcp_user_timeout"] == str(settings.db_tcp_user_timeout_ms)
    assert info["host"] == "h1,h2" and info["port"] == "5432,5433"

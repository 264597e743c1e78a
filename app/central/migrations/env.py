"""Alembic environment: the URL comes from the caller (migrate.py) or from settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from app.central import models  # noqa: F401 - registers every table on Base.metadata
from app.central.db import Base
from app.central.settings import get_settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url


def run_offline() -> None:
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

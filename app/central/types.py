"""Column types shared by the domain models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, TypeDecorator

from app.central.clock import as_utc
from app.contract import plate_match_key


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (stored naive) and PostgreSQL (timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def plate_key_default(context: Any) -> str:
    """Column default of ``plate_key``: the match key of the row's ``plate_normalized``."""
    return plate_match_key(str(context.get_current_parameters()["plate_normalized"]))

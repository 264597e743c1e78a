"""Announcing changes to the live feed from inside a transaction.

Services call ``announce``; the message is delivered only if the transaction commits:
on PostgreSQL through ``pg_notify`` issued just before COMMIT (so every central instance
sharing the database receives it via LISTEN), on SQLite straight to the in-process hub after
COMMIT. See ``live/bridge.py``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.central.clock import utcnow

PENDING_KEY = "live_pending"
CHANNEL = "parking_live"


def announce(db: Session, *, kind: str, data: dict[str, Any], at: str | None = None) -> None:
    """``at``: the message's time as ISO text, when the caller stamps many at once."""
    message = {"type": kind, "at": at or utcnow().isoformat(), "data": data}
    db.info.setdefault(PENDING_KEY, []).append(message)

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.audit.models import AuditEntry
from app.central.clock import utcnow


def record(
    db: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the caller's transaction: it lands if and only if the change does."""
    entry = AuditEntry(
        at=utcnow(),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        details=details or {},
    )
    db.add(entry)
    return entry


def record_change(
    db: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
    added: object | None = None,
) -> AuditEntry:
    """Finish an operator's change: ``added`` (a new row, if the change makes one) is added and
    flushed, the audit entry joins the same transaction, and the transaction commits, so the
    change and its audit entry land together or not at all. The one way lists, tariffs, lots,
    cameras and operators end a change; work that is part of a larger transaction (ingest,
    payments, commands) uses ``record`` and commits with it."""
    if added is not None:
        db.add(added)
        db.flush()
    entry = record(
        db,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        details=details,
    )
    db.commit()
    return entry


def list_entries(
    db: Session, *, action: str | None = None, limit: int = 100, offset: int = 0
) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(db.scalars(query))

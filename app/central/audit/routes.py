from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.central.audit import service
from app.central.audit.schemas import AuditOut
from app.central.deps import DB, Manager, Offset

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditOut])
def list_audit(
    db: DB,
    _: Manager,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[AuditOut]:
    return [
        AuditOut.model_validate(e)
        for e in service.list_entries(db, action=action, limit=limit, offset=offset)
    ]

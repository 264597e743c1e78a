"""Liveness, readiness and the health summary that load balancers and on-call look at."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text

from app.central.cameras import service as cameras
from app.central.cameras.models import Camera
from app.central.clock import utcnow
from app.central.db import is_db_unavailable
from app.central.deps import State

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("")
def health(state: State) -> JSONResponse:
    now = utcnow()
    body: dict[str, Any] = {"status": "ok", "timestamp": now.isoformat(), "database": "ok"}
    try:
        with state.db.read_session() as db:
            rows = db.execute(select(Camera.last_heartbeat_at)).scalars().all()
    except Exception as error:
        if not is_db_unavailable(error):
            raise
        body.update(
            status="unavailable",
            database=f"unreachable: {type(error).__name__}",
            camera_registry="unknown",
        )
        return JSONResponse(
            body, status_code=503, headers={"Retry-After": str(state.settings.retry_after_s)}
        )
    offline_after = state.settings.camera_offline_after_s
    online = sum(
        1 for last in rows if last is not None and (now - last).total_seconds() <= offline_after
    )
    body["camera_registry"] = {"total": len(rows), "online": online, "offline": len(rows) - online}
    return JSONResponse(body)


@router.get("/live")
def live() -> dict[str, str]:
    """The process is up and its event loop answers. Never touches the database."""
    return {"status": "alive"}


@router.get("/ready")
def ready(state: State) -> JSONResponse:
    """Ready for traffic: the database answers and its schema is at this release's head, or
    ahead of it (a newer release's backward-compatible migrations), never behind."""
    try:
        with state.db.read_session() as db:
            current = db.scalar(text("SELECT version_num FROM alembic_version"))
            db.scalar(select(func.count()).select_from(Camera))
    except Exception as error:
        if not is_db_unavailable(error) and "alembic_version" not in str(error):
            raise
        return JSONResponse(
            {"status": "not_ready", "reason": "database unreachable or empty"},
            status_code=503,
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    if current != state.ready_revision and (current is None or current in state.known_revisions):
        # Behind: this release's migrations have not run. A revision this release does not
        # know is ahead: a newer release migrated (backward compatible, docs/runbooks/rollback.md),
        # as during a rolling upgrade's first half or after a rollback; this release serves it.
        return JSONResponse(
            {
                "status": "not_ready",
                "reason": "migrations not at head",
                "database_revision": current,
                "code_revision": state.ready_revision,
            },
            status_code=503,
        )
    body = {"status": "ready", "revision": current}
    if current != state.ready_revision:
        body["schema"] = f"ahead of this release's {state.ready_revision}"
    return JSONResponse(body)


__all__ = ["cameras", "router"]

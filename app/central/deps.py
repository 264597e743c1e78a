"""FastAPI dependencies: the per-request database session, people (JWT) and cameras (API key)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.cameras import service as cameras
from app.central.errors import Forbidden, Unauthorized
from app.central.operators.models import Operator
from app.central.operators.service import Role, decode_token
from app.central.state import AppState

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def app_state(request: Request) -> AppState:
    """Async: a sync dependency would cost a worker-thread hop on every request."""
    state: AppState = request.app.state.parking
    return state


State = Annotated[AppState, Depends(app_state)]


async def db_session(state: State) -> AsyncIterator[Session]:
    """A session per request, made and closed on the event loop (no worker-thread hop each
    way). A session still holding a connection (a route that only read) is closed in a
    worker thread, since that rolls back over the network."""
    session = state.db.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


DB = Annotated[Session, Depends(db_session)]


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role


def operator_from_token(token: str, db: Session, state: AppState) -> Principal:
    claims: dict[str, Any] = decode_token(token, key=state.jwt_key)
    active = db.scalar(select(Operator.active).where(Operator.username == claims["sub"]))
    # End the read at once: a request waiting for a worker thread between its dependencies
    # and its route must not sit on a pooled connection (that starves the pool under load).
    db.rollback()
    if not active:
        raise Unauthorized("user is unknown or disabled")
    return Principal(username=claims["sub"], role=Role[claims["role"]])


def current_operator(
    db: DB, state: State, token: Annotated[str | None, Depends(oauth2)]
) -> Principal:
    if not token:
        raise Unauthorized("missing bearer token")
    return operator_from_token(token, db, state)


def require(role: Role) -> Callable[..., Principal]:
    """Dependency factory: the caller must hold ``role`` or a higher one."""

    def check(principal: Annotated[Principal, Depends(current_operator)]) -> Principal:
        if principal.role < role:
            raise Forbidden(f"needs role {role.name} or higher")
        return principal

    return check


Guard = Annotated[Principal, Depends(require(Role.guard))]
Manager = Annotated[Principal, Depends(require(Role.manager))]
Admin = Annotated[Principal, Depends(require(Role.admin))]


def _camera_for_key(db: Session, api_key: str) -> cameras.CameraIdentity | None:
    try:
        return cameras.camera_for_key(db, api_key=api_key)
    finally:
        db.rollback()  # release the connection before the route runs (see operator_from_token)


async def current_camera(
    db: DB, state: State, x_api_key: Annotated[str | None, Header()] = None
) -> cameras.CameraIdentity:
    """Async so a cached key costs no worker-thread hop (the ingest hot path)."""
    if not x_api_key:
        raise Unauthorized("missing X-API-Key header")
    camera = state.camera_keys.get(x_api_key)
    if camera is None:
        camera = await run_in_threadpool(_camera_for_key, db, x_api_key)
        if camera is not None:
            state.camera_keys.put(x_api_key, camera)
    if camera is None:
        raise Unauthorized("unknown or disabled camera key")
    state.camera_limiter.take(camera.id, "camera")
    return camera


CameraAuth = Annotated[cameras.CameraIdentity, Depends(current_camera)]

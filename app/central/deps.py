"""FastAPI dependencies: the per-request database session, people (JWT) and cameras (API key)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.cameras import service as cameras
from app.central.core.identity import CameraIdentity
from app.central.core.state import AppState
from app.central.errors import Forbidden, RateLimited, Unauthorized
from app.central.operators.models import Operator
from app.central.operators.service import Role, decode_token
from app.contract import API_PREFIX

oauth2 = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/token", auto_error=False)


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
    expires_at: float = float("inf")  # the token's ``exp`` (Unix time)


def operator_from_token(token: str, db: Session, state: AppState) -> Principal:
    """The operator a valid token names, as the database knows them now: disabled operators
    are refused and the role is the current one, not the one written into the token."""
    claims: dict[str, Any] = decode_token(token, key=state.jwt_key)
    row = db.execute(
        select(Operator.active, Operator.role).where(Operator.username == claims["sub"])
    ).one_or_none()
    # End the read at once: a request waiting for a worker thread between its dependencies
    # and its route must not sit on a pooled connection (that starves the pool under load).
    db.rollback()
    if row is None or not row.active or row.role not in Role.__members__:
        raise Unauthorized("user is unknown or disabled")
    return Principal(username=claims["sub"], role=Role[row.role], expires_at=float(claims["exp"]))


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


def _camera_for_key(db: Session, api_key: str) -> CameraIdentity | None:
    try:
        return cameras.camera_for_key(db, api_key=api_key)
    finally:
        db.rollback()  # release the connection before the route runs (see operator_from_token)


def client_address(request: Request) -> str:
    """The client's address: uvicorn has already replaced the connection's address with
    X-Forwarded-For's when (and only when) the connection came from a trusted proxy
    (``PARKING_TRUSTED_PROXIES``)."""
    return request.client.host if request.client else "unknown"


def refuse_failing_client(state: AppState, client: str) -> None:
    """429 for an address that failed too often lately (logins, camera keys), before any work."""
    wait = state.client_failures.exhausted(client)
    if wait is not None:
        raise RateLimited("too many failed attempts from this address", retry_after_s=wait)


async def current_camera(
    request: Request, db: DB, state: State, x_api_key: Annotated[str | None, Header()] = None
) -> CameraIdentity:
    """Async so a cached key costs no worker-thread hop (the ingest hot path)."""
    if not x_api_key:
        raise Unauthorized("missing X-API-Key header")
    camera = state.camera_keys.get(x_api_key)
    if camera is None:
        client = client_address(request)
        refuse_failing_client(state, client)
        camera = await run_in_threadpool(_camera_for_key, db, x_api_key)
        if camera is not None:
            state.camera_keys.put(x_api_key, camera)
        else:
            state.client_failures.take(client, "client address")
    if camera is None:
        raise Unauthorized("unknown or disabled camera key")
    state.camera_limiter.take(camera.id, "camera")
    return camera


CameraAuth = Annotated[CameraIdentity, Depends(current_camera)]


# Row ids in paths and page offsets in queries: bounded, so a value beyond 64 bits is a 422
# naming the parameter, never an overflow in the database driver.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Offset = Annotated[int, Query(ge=0, le=10**9)]

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from app.central.clock import utcnow
from app.central.deps import DB, Admin, Guard, State, client_address, refuse_failing_client
from app.central.errors import Unauthorized
from app.central.operators import service
from app.central.operators.schemas import OperatorCreate, OperatorOut, OperatorUpdate, TokenOut

router = APIRouter(tags=["operators"])


@router.post("/auth/token", response_model=TokenOut)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, db: DB, state: State
) -> TokenOut:
    client = client_address(request)
    refuse_failing_client(state, client)
    state.login_limiter.take(f"{client}|{form.username}", "login")
    try:
        operator = service.authenticate(db, username=form.username, password=form.password)
    except Unauthorized:
        state.client_failures.take(client, "client address")
        raise
    token = service.issue_token(
        operator, key=state.jwt_key, ttl_s=state.settings.jwt_ttl_s, now=utcnow()
    )
    return TokenOut(access_token=token, expires_in=state.settings.jwt_ttl_s, role=operator.role)


@router.get("/auth/me")
def me(who: Guard) -> dict[str, str]:
    return {"username": who.username, "role": who.role.name}


@router.get("/users", response_model=list[OperatorOut])
def list_users(db: DB, _: Admin) -> list[OperatorOut]:
    return [OperatorOut.model_validate(o) for o in service.list_operators(db)]


@router.post("/users", response_model=OperatorOut, status_code=status.HTTP_201_CREATED)
def create_user(body: OperatorCreate, db: DB, who: Admin) -> OperatorOut:
    operator = service.create_operator(
        db, username=body.username, password=body.password, role=body.role, actor=who.username
    )
    return OperatorOut.model_validate(operator)


@router.patch("/users/{username}", response_model=OperatorOut)
def update_user(username: str, body: OperatorUpdate, db: DB, who: Admin) -> OperatorOut:
    operator = service.set_active(db, username=username, active=body.active, actor=who.username)
    return OperatorOut.model_validate(operator)

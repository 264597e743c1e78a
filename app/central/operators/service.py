"""Operators (people): argon2 passwords, short-lived JWTs, roles."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.central.audit import service as audit
from app.central.errors import Conflict, InvalidInput, NotFound, Unauthorized
from app.central.operators.models import Operator

_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist, so timing does not leak names.
_DUMMY_HASH = _hasher.hash("not-a-password")


class Role(IntEnum):
    guard = 1
    manager = 2
    admin = 3


MIN_PASSWORD = 8
# The API's and the CLI's rule for user names (operators/schemas.py uses the same pattern).
USERNAME_PATTERN = r"^[a-zA-Z0-9_.\-]{2,64}$"
USERNAME = re.compile(USERNAME_PATTERN)


def create_operator(
    db: Session, *, username: str, password: str, role: str, actor: str = "cli"
) -> Operator:
    if not USERNAME.fullmatch(username):
        raise InvalidInput(
            "username must be 2-64 letters, digits and '_', '.', '-'", field="username"
        )
    if role not in Role.__members__:
        raise InvalidInput("role must be guard, manager or admin", field="role")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters", field="password")
    if db.scalar(select(Operator).where(Operator.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists", field="username")
    operator = Operator(username=username, password_hash=_hasher.hash(password), role=role)
    audit.record_change(
        db,
        actor=actor,
        action="operator.create",
        target_type="operator",
        target_id=username,
        details={"role": role},
        added=operator,
    )
    return operator


def set_active(db: Session, *, username: str, active: bool, actor: str) -> Operator:
    operator = db.scalar(select(Operator).where(Operator.username == username))
    if operator is None:
        raise NotFound(f"user {username!r} does not exist")
    if not active and operator.active:
        if username == actor:
            raise Conflict("an operator cannot disable themselves", field="active")
        if operator.role == Role.admin.name and _active_admins(db) <= 1:
            raise Conflict("the last active admin cannot be disabled", field="active")
    operator.active = active
    audit.record_change(
        db,
        actor=actor,
        action="operator.set_active",
        target_type="operator",
        target_id=username,
        details={"active": active},
    )
    return operator


def _active_admins(db: Session) -> int:
    return len(
        db.scalars(
            select(Operator.id).where(Operator.role == Role.admin.name, Operator.active.is_(True))
        ).all()
    )


def list_operators(db: Session) -> list[Operator]:
    return list(db.scalars(select(Operator).order_by(Operator.username)))


def authenticate(db: Session, *, username: str, password: str) -> Operator:
    operator = db.scalar(select(Operator).where(Operator.username == username))
    try:
        _hasher.verify(operator.password_hash if operator else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise Unauthorized("wrong username or password") from None
    if operator is None or not operator.active:
        raise Unauthorized("wrong username or password")
    return operator


def issue_token(operator: Operator, *, key: str, ttl_s: int, now: datetime) -> str:
    claims = {
        "sub": operator.username,
        "role": operator.role,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
    }
    return jwt.encode(claims, key, algorithm="HS256")


def decode_token(token: str, *, key: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["HS256"], options={"require": ["sub", "role", "exp"]}
        )
    except jwt.PyJWTError as error:
        raise Unauthorized(f"invalid token: {error}") from None
    if claims.get("role") not in Role.__members__:
        raise Unauthorized("invalid token: unknown role")
    return claims

"""Operator changes end in ``audit.record_change``: the change and its one audit entry are
committed together (seen from another connection), or neither lands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.central.audit import service as audit
from app.central.audit.models import AuditEntry
from app.central.db import Database
from app.central.main import create_app
from app.central.operators.models import Operator
from tests.conftest import build_world, make_settings, token


@pytest.fixture
def database(fresh_url: str, tmp_path: Path) -> Iterator[Database]:
    database = Database(make_settings(tmp_path, fresh_url))
    with database.session() as session:
        build_world(session)
    yield database
    database.dispose()


def _audited(database: Database, action: str) -> int:
    """Committed audit entries of ``action``, counted on a connection of its own."""
    with database.session() as session:
        return session.scalar(select(func.count()).where(AuditEntry.action == action)) or 0


Call = Callable[[TestClient, dict[str, str]], Any]
NOW = datetime.now(UTC)
SOON = (NOW + timedelta(days=30)).isoformat()

CHANGES: list[tuple[str, str, Call]] = [
    (
        "admin",
        "lot.create",
        lambda c, h: c.post("/api/v1/lots", json={"id": "lot-b", "capacity": 5}, headers=h),
    ),
    (
        "manager",
        "lot.update",
        lambda c, h: c.patch("/api/v1/lots/lot-a", json={"capacity": 7}, headers=h),
    ),
    (
        "admin",
        "tariff.put",
        lambda c, h: c.put(
            "/api/v1/tariffs",
            json={
                "lot_id": "lot-a",
                "vehicle_type": "truck",
                "free_minutes": 0,
                "hourly_rate": 1000,
                "daily_cap": 5000,
            },
            headers=h,
        ),
    ),
    (
        "manager",
        "list.add_deny",
        lambda c, h: c.post(
            "/api/v1/lists", json={"plate": "AB 123", "kind": "deny", "reason": "stolen"}, headers=h
        ),
    ),
    (
        "manager",
        "subscription.add",
        lambda c, h: c.post(
            "/api/v1/subscriptions",
            json={
                "plate": "CD 456",
                "lot_id": "lot-a",
                "holder": "tenant",
                "valid_from": NOW.isoformat(),
                "valid_until": SOON,
            },
            headers=h,
        ),
    ),
    (
        "admin",
        "camera.create",
        lambda c, h: c.post(
            "/api/v1/cameras",
            json={"id": "lane-2", "lot_id": "lot-a", "direction": "entry"},
            headers=h,
        ),
    ),
    (
        "admin",
        "camera.rotate_key",
        lambda c, h: c.post("/api/v1/cameras/lane-in/rotate-key", headers=h),
    ),
    (
        "admin",
        "operator.create",
        lambda c, h: c.post(
            "/api/v1/users",
            json={"username": "clerk", "password": "long-enough-secret", "role": "guard"},
            headers=h,
        ),
    ),
    (
        "admin",
        "operator.set_active",
        lambda c, h: c.patch("/api/v1/users/guard", json={"active": False}, headers=h),
    ),
]


@pytest.mark.parametrize(("role", "action", "call"), CHANGES, ids=[a for _, a, _ in CHANGES])
def test_each_change_commits_with_one_audit_entry(
    database: Database, tmp_path: Path, role: str, action: str, call: Call
) -> None:
    app = create_app(make_settings(tmp_path, database.url), database=database, run_duties=False)
    with TestClient(app) as client:
        before = _audited(database, action)
        response = call(client, token(client, role))
        assert response.status_code in (200, 201), response.text
    assert _audited(database, action) == before + 1


def test_a_list_entry_removed_is_committed_and_audited(database: Database, tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, database.url), database=database, run_duties=False)
    with TestClient(app) as client:
        headers = token(client, "manager")
        added = client.post(
            "/api/v1/lists", json={"plate": "EF 789", "kind": "allow", "reason": "staff"},
            headers=headers,
        )  # fmt: skip
        assert added.status_code == 201, added.text
        gone = client.delete(f"/api/v1/lists/{added.json()['id']}", headers=headers)
        assert gone.status_code == 204
        assert client.get("/api/v1/lists", headers=headers).json() == []
    assert _audited(database, "list.remove_allow") == 1


def test_a_change_that_fails_leaves_no_audit_entry(database: Database) -> None:
    """A row that cannot be written (a second ``guard``) stops the change before its entry."""
    with database.session() as session:
        duplicate = Operator(username="guard", password_hash="x", role="guard")
        with pytest.raises(IntegrityError):
            audit.record_change(
                session,
                actor="admin",
                action="operator.create",
                target_type="operator",
                target_id="guard",
                added=duplicate,
            )
        session.rollback()
    assert _audited(database, "operator.create") == 3  # the world's three people only

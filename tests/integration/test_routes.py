"""Every operation central answers, pinned: (method, path) as the app routes it.

The list was taken from the app before the feature routers moved under one aggregator
(``app/central/api.py``); a route that disappears, moves or appears changes the wire and must
change this list on purpose. Each pinned HTTP operation is also requested once, without
credentials, and must reach its route (the router's own 404 or 405 means it did not).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount, WebSocketRoute

from app.central import api
from app.central.main import create_app
from app.contract import API_PREFIX
from tests.conftest import make_settings

OPERATIONS = frozenset(
    {
        ("DELETE", "/api/v1/lists/{entry_id}"),
        ("GET", "/api/health"),
        ("GET", "/api/health/live"),
        ("GET", "/api/health/ready"),
        ("GET", "/api/v1/anomalies"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/auth/me"),
        ("GET", "/api/v1/cameras"),
        ("GET", "/api/v1/commands"),
        ("GET", "/api/v1/commands/{command_id}"),
        ("GET", "/api/v1/edge/lists"),
        ("GET", "/api/v1/edge/offline-decisions"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/events/{event_id}/snapshot"),
        ("GET", "/api/v1/lanes/{camera_id}/commands"),
        ("GET", "/api/v1/lists"),
        ("GET", "/api/v1/lots"),
        ("GET", "/api/v1/payments"),
        ("GET", "/api/v1/payments/{payment_id}"),
        ("GET", "/api/v1/payments/{payment_id}/receipt"),
        ("GET", "/api/v1/reports/day"),
        ("GET", "/api/v1/reports/day.csv"),
        ("GET", "/api/v1/reports/revenue"),
        ("GET", "/api/v1/reports/sessions/{session_id}"),
        ("GET", "/api/v1/sessions"),
        ("GET", "/api/v1/sessions/{session_id}"),
        ("GET", "/api/v1/sessions/{session_id}/due"),
        ("GET", "/api/v1/subscriptions"),
        ("GET", "/api/v1/tariffs"),
        ("GET", "/api/v1/users"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/redoc"),
        ("HEAD", "/docs"),
        ("HEAD", "/docs/oauth2-redirect"),
        ("HEAD", "/openapi.json"),
        ("HEAD", "/redoc"),
        ("MOUNT", ""),  # the dashboard's static files at /
        ("PATCH", "/api/v1/lots/{lot_id}"),
        ("PATCH", "/api/v1/sessions/{session_id}"),
        ("PATCH", "/api/v1/users/{username}"),
        ("POST", "/api/v1/anomalies/{anomaly_id}/resolve"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/cameras"),
        ("POST", "/api/v1/cameras/{camera_id}/heartbeat"),
        ("POST", "/api/v1/cameras/{camera_id}/open"),
        ("POST", "/api/v1/cameras/{camera_id}/rotate-key"),
        ("POST", "/api/v1/edge/offline-decisions"),
        ("POST", "/api/v1/events"),
        ("POST", "/api/v1/events/batch"),
        ("POST", "/api/v1/lanes/{camera_id}/commands/{command_id}/ack"),
        ("POST", "/api/v1/lists"),
        ("POST", "/api/v1/lots"),
        ("POST", "/api/v1/plates/erase"),
        ("POST", "/api/v1/sessions"),
        ("POST", "/api/v1/sessions/{session_id}/close"),
        ("POST", "/api/v1/sessions/{session_id}/payments"),
        ("POST", "/api/v1/sessions/{session_id}/void"),
        ("POST", "/api/v1/subscriptions"),
        ("POST", "/api/v1/users"),
        ("PUT", "/api/v1/tariffs"),
        ("WEBSOCKET", "/api/v1/live"),
    }
)


def _flat_routes(app: FastAPI) -> Iterator[BaseRoute]:
    """The app's routes with included routers expanded (newer FastAPI includes lazily)."""
    expand = getattr(fastapi.routing, "iter_route_contexts", None)
    yield from expand(app.routes) if expand is not None else app.routes


def operations(app: FastAPI) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in _flat_routes(app):
        original = getattr(route, "original_route", route)
        path: str = getattr(route, "path", "")
        if isinstance(original, WebSocketRoute | fastapi.routing.APIWebSocketRoute):
            found.add(("WEBSOCKET", path))
        elif isinstance(original, Mount):
            found.add(("MOUNT", path))
        else:
            found.update((method, path) for method in getattr(route, "methods", None) or ())
    return found


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    tmp: Path = tmp_path_factory.mktemp("routes")
    return create_app(make_settings(tmp, f"sqlite:///{tmp / 'routes.db'}"), run_duties=False)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_the_app_routes_exactly_the_pinned_operations(app: FastAPI) -> None:
    found = operations(app)
    assert found - OPERATIONS == set(), "new operations: pin them here on purpose"
    assert OPERATIONS - found == set(), "operations gone or moved"


def test_the_version_prefix_is_written_once() -> None:
    """Feature routers name only their own part; ``api.router`` adds ``API_PREFIX``."""
    assert api.router.prefix == API_PREFIX
    for feature in api.FEATURE_ROUTERS:
        assert not feature.prefix.startswith("/api"), feature.prefix
        for route in feature.routes:
            assert not getattr(route, "path", "").startswith("/api"), route


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)


@pytest.mark.parametrize(
    ("method", "path"),
    sorted(
        (m, p)
        for m, p in OPERATIONS
        if p.startswith(API_PREFIX) and m not in {"HEAD", "MOUNT", "WEBSOCKET"}
    ),
)
def test_each_operation_reaches_its_route(client: TestClient, method: str, path: str) -> None:
    """Without credentials every versioned operation refuses (401/403/422) or answers from its
    route; the router's own 'Not Found' / 'Method Not Allowed' would mean it was never reached.
    Request metrics label it with the whole template, as it is pinned here."""
    response = client.request(method, _concrete(path))
    assert f'method="{method}",route="{path}"' in client.get("/metrics").text
    assert response.status_code != 405, (method, path)
    assert not (
        response.status_code == 404 and response.text in {"Not Found", '{"detail":"Not Found"}'}
    )

"""Every feature router of central, included once under the contract's ``API_PREFIX``.

A feature's router declares only its own part of the path (``/cameras``, ``/lots``, or none);
the version prefix is written here and nowhere else. ``main.create_app`` includes ``router``
next to the health checks, which live outside the versioned API (``/api/health``).
"""

from __future__ import annotations

from fastapi import APIRouter

from app.central.audit.routes import router as audit_router
from app.central.cameras.routes import router as cameras_router
from app.central.commands.routes import router as commands_router
from app.central.edgesync.routes import router as edgesync_router
from app.central.events.routes import router as events_router
from app.central.lists.routes import router as lists_router
from app.central.live.routes import router as live_router
from app.central.lots.routes import router as lots_router
from app.central.operators.routes import router as operators_router
from app.central.payments.routes import router as payments_router
from app.central.privacy.routes import router as privacy_router
from app.central.reports.routes import router as reports_router
from app.central.sessions.routes import router as sessions_router
from app.central.tariffs.routes import router as tariffs_router
from app.contract import API_PREFIX

FEATURE_ROUTERS = (
    events_router,
    sessions_router,
    cameras_router,
    commands_router,
    payments_router,
    operators_router,
    lots_router,
    tariffs_router,
    lists_router,
    edgesync_router,
    audit_router,
    reports_router,
    privacy_router,
    live_router,
)

router = APIRouter(prefix=API_PREFIX)
for _feature in FEATURE_ROUTERS:
    router.include_router(_feature)

"""The application factory: settings -> database -> routers, error mapping, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from app.central import __version__, api
from app.central.core.hub import LiveHub
from app.central.core.state import AppState
from app.central.db import Database, is_db_unavailable, tcp_params
from app.central.duties import Duties
from app.central.errors import DomainError, InvalidInput, RateLimited, Unauthorized
from app.central.events.combiner import WriteCombiner
from app.central.events.fastpath import PATH as FAST_PATH
from app.central.events.fastpath import FastIngest
from app.central.events.service import IngestPolicy
from app.central.frame import FRAMED, HttpFrame
from app.central.health.routes import router as health_router
from app.central.live import bridge
from app.central.logs import configure_logging
from app.central.metrics import DB_UNAVAILABLE, REGISTRY, DatabaseCollector
from app.central.migrate import head_revision, known_revisions
from app.central.ratelimit import TokenBucket
from app.central.settings import Settings, get_settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "dashboard"


def _unavailable(state: AppState) -> JSONResponse:
    DB_UNAVAILABLE.inc()
    return JSONResponse(
        {"detail": "database unavailable, retry shortly"},
        status_code=503,
        headers={"Retry-After": str(state.settings.retry_after_s)},
    )


def domain_error_response(error: DomainError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_s)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    body: dict[str, Any]
    if isinstance(error, InvalidInput) or error.field:
        body = {
            "detail": [
                {
                    "loc": [error.where, error.field or ""],
                    "msg": error.message,
                    "type": type(error).__name__,
                }
            ]
        }
    else:
        body = {"detail": error.message}
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def database_error_response(state: AppState, error: SQLAlchemyError) -> JSONResponse:
    if is_db_unavailable(error):
        log.warning("database unavailable: %s", error)
        return _unavailable(state)
    log.exception("database error", exc_info=error)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def error_response(state: AppState, error: Exception) -> Response | None:
    """The answer the exception handlers below give for ``error``; None: not theirs."""
    if isinstance(error, DomainError):
        return domain_error_response(error)
    if isinstance(error, SQLAlchemyError):
        return database_error_response(state, error)
    return None


# FastAPI >= 0.16x has native OpenTelemetry and asks, on every request, whether a provider is
# configured (environment look-ups: ~1 % of central's CPU at the ingest rate). Central reports
# through Prometheus and Sentry, so it is switched off where the option exists.
_NO_OTEL: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


class CentralApp(FastAPI):
    """FastAPI, but ``POST /api/v1/events`` enters ``ingest_front`` (the request frame and the
    fast path, ``frame.py`` and ``events/fastpath.py``) before Starlette's outer layers.

    Every request to a Starlette app passes ServerErrorMiddleware and, in FastAPI >= 0.16x, its
    telemetry and body-limit wrappers before the app's own middleware: coroutine levels that
    every resume of the request goes through, most wrapping ``send`` again. The ingest request
    is the one every camera sends for every event. The front's frame does what
    ServerErrorMiddleware would (``last_resort``); anything but the plain success goes on to the
    whole app as any other request (Sentry's integration and the exception handlers included),
    marked ``FRAMED`` so the app's own frame and fast path let it through.
    """

    ingest_front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.ingest_front
        if (
            front is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == FAST_PATH
        ):
            scope["app"] = self
            await front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


class _Tried:
    """The whole app for a request the ingest front has framed and tried (see CentralApp)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[FRAMED] = True
        await FastAPI.__call__(self.app, scope, receive, send)


def _install_error_mapping(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> JSONResponse:
        return domain_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # Name the field, never echo the input back (it may be a megabyte of base64).
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return JSONResponse({"detail": details}, status_code=422)

    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, error: OverflowError) -> JSONResponse:
        # The safety net under the bounded types: a value past what a date or the database
        # can hold is the client's input, never a server error.
        log.info("value out of range: %s", error)
        detail = [{"loc": ["request"], "msg": "a value is out of range", "type": "overflow"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, error: SQLAlchemyError) -> Response:
        return database_error_response(request.app.state.parking, error)


def init_sentry(settings: Settings) -> bool:
    """Start the Sentry SDK when a DSN is set (True then); the server and `sentry-test` both."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.environment,
        release=settings.release,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # Request bodies carry plates and payment references: never attached to an event.
        max_request_body_size="never",
        send_default_pii=False,
    )
    return True


def create_app(
    settings: Settings | None = None, *, database: Database | None = None, run_duties: bool = True
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(
        level=settings.log_level, json_lines=settings.log_json, file=settings.log_file
    )
    init_sentry(settings)
    db = database or Database(settings)
    hub = LiveHub()
    bridge.install(db.sessionmaker, hub, postgres=db.is_postgres)
    state = AppState(
        settings=settings,
        db=db,
        hub=hub,
        jwt_key=settings.jwt_key(),
        camera_limiter=TokenBucket(
            rate_per_s=settings.camera_rate_per_s, burst=settings.camera_burst
        ),
        client_failures=TokenBucket(
            rate_per_s=settings.client_failures_per_min / 60.0,
            burst=settings.client_failures_per_min,
        ),
        login_limiter=TokenBucket(
            rate_per_s=settings.login_attempts_per_min / 60.0, burst=settings.login_attempts_per_min
        ),
        ready_revision=head_revision(),
        known_revisions=known_revisions(),
    )
    hub.watch(state.command_waiters.on_message)
    collector = DatabaseCollector(db, offline_after_s=settings.camera_offline_after_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        # Sync routes run in this pool. More threads than cores only add GIL contention; the
        # database pool is sized to match so no thread waits for a connection.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        listener = None
        if db.is_postgres:
            listener = bridge.PgListener(bridge.libpq_conninfo(db.url, **tcp_params(settings)), hub)
            listener.start()
        duties = Duties(db, settings)
        if run_duties:
            duties.start()
        with contextlib.suppress(ValueError):  # a second app in one process (tests)
            REGISTRY.register(collector)
        app.state.listener = listener
        app.state.duties = duties
        log.info("central started", extra={"version": __version__, "postgres": db.is_postgres})
        try:
            yield
        finally:
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(collector)
            await hub.close_all(1001)
            if listener is not None:
                listener.stop()
            if run_duties:
                duties.stop()
            if database is None:
                db.dispose()
            log.info("central stopped")

    app = CentralApp(
        title="Parking 24/7 central", version=__version__, lifespan=lifespan, **_NO_OTEL
    )
    app.state.parking = state
    # Group commit of single-event ingest (events/combiner.py); SQLite has one writer anyway.
    app.state.ingest = WriteCombiner(
        IngestPolicy(
            low_confidence=settings.low_confidence,
            timezone=settings.timezone,
            max_event_age=timedelta(days=settings.event_max_age_days),
        ),
        sessions=db.sessionmaker,
        concurrency=settings.ingest_concurrency if db.is_postgres else 1,
    )
    _install_error_mapping(app)
    # Innermost: the plain success path of POST /api/v1/events without FastAPI's per-request
    # machinery; everything else (and every error) goes on to the route (events/fastpath.py).
    app.add_middleware(FastIngest, fastapi_app=app, error_response=error_response)
    # Outermost of ours: request id (in every log line below, the fast path's and a 413's
    # included, and in every answer), security headers, request metrics and the body limit,
    # as one layer (frame.py).
    app.add_middleware(HttpFrame, max_bytes=settings.max_body_bytes)
    # The same two, for POST /api/v1/events, before Starlette's outer layers (CentralApp).
    app.ingest_front = HttpFrame(
        FastIngest(_Tried(app), fastapi_app=app, error_response=error_response),
        max_bytes=settings.max_body_bytes,
        last_resort=True,
    )

    app.include_router(health_router)  # outside the versioned API: /api/health
    app.include_router(api.router)  # every feature under API_PREFIX (api.py)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Several worker processes (``serve --workers N``): counters and histograms of all
            # of them, summed from their files, plus this worker's database-backed gauges.
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(collector)
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    return app

"""The plain success path of ``POST /api/v1/events`` as pure ASGI.

Every camera posts every event here, and once the database work is batched (``combiner.py``)
most of the CPU per event went to FastAPI's per-request machinery (dependency solving, body
parsing twice over, telemetry checks). This middleware handles only the common case: a JSON
event that validates, from a camera key already in the cache, within its rate limit and for its
own camera. Anything else (a cache miss, bad input, another camera's id, 429, a dependency
override other than the database session's) goes on, with the body replayed, to the FastAPI
route, so every error answer is the route's own.

A test that overrides only ``deps.db_session`` (the TestClient suites: one session inside a
rolled-back transaction) is honoured here, so those suites take the same path production does:
the session is the one the override yields. Errors after the event was handed to the combiner
(409, 503) are answered with the same functions the app's exception handlers use.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from typing import Any, cast

import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.central.core.state import AppState
from app.central.deps import db_session
from app.central.errors import RateLimited
from app.central.events.combiner import WriteCombiner
from app.central.events.routes import log_ingested, log_not_ingested
from app.central.events.routes import router as events_router
from app.central.events.service import owns
from app.central.frame import FRAMED
from app.central.metrics import EVENTS_INGESTED
from app.contract import API_PREFIX, PlateEvent

PATH = f"{API_PREFIX}/events"
_ACCEPTED = EVENTS_INGESTED.labels(result="accepted")
_DUPLICATE = EVENTS_INGESTED.labels(result="duplicate")
_JSON = (b"content-type", b"application/json")
_REPLAYED = (b"x-idempotent-replay", b"true")

ErrorResponse = Callable[[AppState, Exception], Response | None]


class FastIngest:
    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, error_response: ErrorResponse):
        self.app = app
        self.fastapi_app = fastapi_app
        self.error_response = error_response
        self._ingest_route: Any = None

    def _route_of_path(self) -> Any:
        """The route object of ``POST /api/v1/events``, so request metrics label this path
        exactly as the route would (their label is the route's path template)."""
        if self._ingest_route is None:
            self._ingest_route = next(
                r
                for r in events_router.routes
                if isinstance(r, APIRoute)
                and API_PREFIX + r.path == PATH  # api.py includes the router under the prefix
                and "POST" in (r.methods or ())
            )
        return self._ingest_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or FRAMED in scope  # tried already, before the app's outer layers (main.py)
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or not self._overrides_honoured()
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        handled = await self._handle(scope, body, send)
        if not handled:
            await self.app(scope, _replay([body], None, receive), send)

    def _overrides_honoured(self) -> bool:
        """No dependency overrides, or exactly one: ``db_session``, by a callable without
        parameters of its own (anything else needs FastAPI to solve it: the route)."""
        overrides = self.fastapi_app.dependency_overrides
        if not overrides:
            return True
        if overrides.keys() != {db_session}:
            return False
        return not inspect.signature(overrides[db_session]).parameters

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Session | None]:
        """The request's database session as the ``deps.db_session`` override gives it, or
        None without one: the combiner then writes the batch in a session of its own."""
        override = self.fastapi_app.dependency_overrides.get(db_session)
        if override is None:
            yield None
            return
        made: Any = override()
        if inspect.isasyncgen(made):
            agen = cast(AsyncGenerator[Session, None], made)
            yield await anext(agen)
            await anext(agen, None)
        elif inspect.isgenerator(made):
            gen = cast(Generator[Session, None, None], made)
            yield next(gen)
            next(gen, None)
        else:
            yield cast(Session, await made if inspect.isawaitable(made) else made)

    async def _handle(self, scope: Scope, body: bytes, send: Send) -> bool:
        api_key = content_type = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value
        if not api_key or content_type != b"application/json":
            return False
        state: AppState = self.fastapi_app.state.parking
        camera = state.camera_keys.get(api_key)
        if camera is None:
            return False
        try:
            event = PlateEvent.model_validate_json(body)
        except ValidationError:
            return False
        if not owns(camera, event):
            return False  # the route refuses it (409, the field named)
        try:
            state.camera_limiter.take(camera.id, "camera")
        except RateLimited:
            return False
        combiner: WriteCombiner = self.fastapi_app.state.ingest
        overridden = bool(self.fastapi_app.dependency_overrides)
        async with self._session() if overridden else _NO_SESSION as db:
            try:
                result = await combiner.submit(db, camera, event)
            except Exception as error:
                log_not_ingested((event,), error, "fast")
                mapped = self.error_response(state, error)
                if mapped is None:
                    raise
                scope["route"] = self._route_of_path()
                await mapped(scope, _no_body, send)
                return True
        (_DUPLICATE if result.replay else _ACCEPTED).inc()
        log_ingested((event,), (result,), "fast")
        scope["route"] = self._route_of_path()
        # The answer as JSONResponse renders it, sent straight (no Response object per event).
        answer = orjson.dumps(result.ack)
        headers = [(b"content-length", b"%d" % len(answer)), _JSON]
        if result.replay:
            headers.append(_REPLAYED)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
        return True


class _NoSession:
    """The session of a request without dependency overrides: none (the combiner's batch
    opens its own). One reusable object, cheaper than a generator-based context manager."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> bool:
        return False


_NO_SESSION = _NoSession()


def _replay(bodies: list[bytes], first: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that hands the route the body already read, then the real channel."""
    pending: list[Message] = (
        [{"type": "http.request", "body": b, "more_body": False} for b in bodies]
        if first is None
        else [first]
    )

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _no_body() -> Message:
    return {"type": "http.disconnect"}

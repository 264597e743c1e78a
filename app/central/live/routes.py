"""``WS /api/v1/live``: session and camera changes as they commit.

Browsers cannot set headers on a WebSocket, so the JWT comes as the ``token`` query
parameter or as the subprotocol ``bearer.<token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.central.core.state import AppState
from app.central.deps import operator_from_token
from app.central.errors import DomainError

log = logging.getLogger(__name__)
router = APIRouter()


@router.websocket("/live")
async def live_feed(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.parking
    token = websocket.query_params.get("token")
    subprotocol = None
    for proto in websocket.scope.get("subprotocols", []):
        if proto.startswith("bearer."):
            token, subprotocol = proto.removeprefix("bearer."), proto
    try:
        if not token:
            raise DomainError("missing token")
        with state.db.read_session() as db:
            principal = await asyncio.to_thread(operator_from_token, token, db, state)
    except DomainError:
        # Accept, then close with an application code the browser can read (a refusal
        # before accept is only an HTTP 403 to JavaScript).
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(code=4401, reason="unauthorized")
        return
    except Exception:  # database down: ask the client to come back later
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(code=1013, reason="try again later")
        return
    await websocket.accept(subprotocol=subprotocol)
    queue = state.hub.register(websocket)
    await websocket.send_json(
        {"type": "hello", "data": {"user": principal.username, "role": principal.role.name}}
    )

    async def drain_incoming() -> None:
        # The client sends nothing we need; reading notices its disconnect promptly.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await websocket.receive_text()

    async def still_allowed() -> bool:
        """The token has not expired and its operator is still active (asked again)."""
        if time.time() >= principal.expires_at:
            return False
        try:
            with state.db.read_session() as db:
                await asyncio.to_thread(operator_from_token, token, db, state)
        except DomainError:
            return False
        except Exception:  # the database is away: keep the feed, ask again next time
            log.warning("live: could not re-check %s", principal.username)
        return True

    reader = asyncio.create_task(drain_incoming())
    recheck_s = state.settings.live_recheck_s
    next_check = time.monotonic() + recheck_s
    try:
        while not reader.done():
            if time.monotonic() >= next_check or time.time() >= principal.expires_at:
                next_check = time.monotonic() + recheck_s
                if not await still_allowed():
                    await websocket.close(code=4401, reason="session ended")
                    break
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait(
                {getter, reader},
                timeout=max(
                    0.05,
                    min(
                        state.settings.ws_ping_interval_s,
                        next_check - time.monotonic(),
                        principal.expires_at - time.time(),
                    ),
                ),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getter not in done:
                getter.cancel()
                if not reader.done() and time.monotonic() < next_check:
                    await websocket.send_json({"type": "ping"})
                continue
            message = getter.result()
            if message is None:
                await websocket.close(code=1008, reason="too slow")
                break
            await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        reader.cancel()
        state.hub.unregister(websocket)

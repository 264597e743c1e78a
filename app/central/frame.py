"""What every HTTP request to central gets, in one pure ASGI layer (the outermost of ours).

* **Request id** (``logs.py``): the client's sane ``X-Request-ID`` or a fresh one, set in
  ``REQUEST_ID`` for every log line of the request and answered in ``X-Request-ID`` (HTTP
  answers and WebSocket accepts). The variable is reset when the app returns, not when it
  raises: the server logs an unhandled error in the same task afterwards, with the id.
* **Security headers**: ``SECURITY_HEADERS`` on every HTTP answer that does not set them itself.
* **Request metrics** (``metrics.py``): count by route template, method and status, latency
  except for the routes held open by design; a 413 is counted too.
* **Body limit**: a body over ``max_bytes`` is refused (413) before it reaches a route, also when
  the client streams it without Content-Length.

These were four middlewares, each wrapping ``send`` again: one layer instead of four is 0.05 to
0.09 ms of CPU less per request at the ingest rate (docs/ingest-performance.md).

``last_resort``: the frame is the outermost layer (``main.CentralApp``'s ingest front, before
Starlette's ServerErrorMiddleware), so it does what that middleware would for an error the app
raises: the error to Sentry, a 500 if nothing was sent yet, and raised on for the server's log.
"""

from __future__ import annotations

import contextlib
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.central.logs import REQUEST_ID, REQUEST_ID_HEADER, accepted_request_id, new_request_id
from app.central.metrics import observe_request

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)
# Set in the scope of a request the ingest front (``main.CentralApp``) has framed and tried on
# the fast path: the app's own frame and fast path let it through to the route.
FRAMED = "parking.framed"


class HttpFrame:
    def __init__(self, app: ASGIApp, *, max_bytes: int, last_resort: bool = False) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.last_resort = last_resort

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or FRAMED in scope:
            await self.app(scope, receive, send)
            return
        incoming = declared = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                incoming = value
            elif name == b"content-length":
                declared = value
        request_id = accepted_request_id(incoming) or new_request_id()
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        token = REQUEST_ID.set(request_id)
        if kind == "websocket":

            async def accept_with_id(message: Message) -> None:
                if message["type"] == "websocket.accept":
                    message = {**message, "headers": [*message.get("headers", ()), id_header]}
                await send(message)

            await self.app(scope, receive, accept_with_id)
            REQUEST_ID.reset(token)
            return

        start = time.perf_counter()
        status = 500
        started = False

        async def framed_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                headers.append(id_header)
                message = {**message, "headers": headers}
            await send(message)

        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(framed_send)
            else:
                seen = 0

                async def counting_receive() -> Message:
                    nonlocal seen
                    message = await receive()
                    if message["type"] == "http.request":
                        seen += len(message.get("body", b""))
                        if seen > self.max_bytes:
                            raise _BodyTooLarge
                    return message

                try:
                    await self.app(scope, counting_receive, framed_send)
                except _BodyTooLarge:
                    if started:
                        raise
                    await self._refuse(framed_send)
        except Exception as error:
            if self.last_resort:
                if FRAMED not in scope:  # else the whole app had it, and reported it already
                    _to_sentry(error)
                if not started:
                    await framed_send(_ERROR_START)
                    await framed_send(_ERROR_BODY)
            raise
        finally:
            observe_request(scope, status, time.perf_counter() - start)
        REQUEST_ID.reset(token)

    async def _refuse(self, send: Send) -> None:
        detail = {
            "loc": ["body"],
            "msg": f"request body exceeds {self.max_bytes} bytes",
            "type": "body_too_large",
        }
        body = json.dumps({"detail": [detail]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


# Starlette's ServerErrorMiddleware's answer outside debug mode.
_ERROR_START: Message = {
    "type": "http.response.start",
    "status": 500,
    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")],
}
_ERROR_BODY: Message = {"type": "http.response.body", "body": b"Internal Server Error"}


def _to_sentry(error: Exception) -> None:
    """The error to Sentry when the SDK runs (the server started it: ``main.init_sentry``)."""
    with contextlib.suppress(Exception):
        import sentry_sdk

        if sentry_sdk.get_client().is_active():
            sentry_sdk.capture_exception(error)

"""CPU cost of central's per-request and per-event logging, in microseconds.

``ingest_line_us``: one ingest line (events/routes.py ``log_ingested``) at INFO through the
production JSON formatter and request-id filter to a stream (/dev/null: the write's syscall is
counted, not the journal's own work); ``ingest_line_disabled_us``: the same call with INFO off;
``request_id_middleware_us``: what ``frame.HttpFrame`` adds to one HTTP request (a fresh id,
the answer's headers, the request metrics, the body limit). Median of ``--rounds`` rounds of
``--n`` calls each.

The last line printed is one JSON object with those three figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.types import Message, Receive, Scope, Send

from app.central.events.routes import ingest_log, log_ingested
from app.central.events.service import Ingested
from app.central.frame import HttpFrame
from app.central.logs import REQUEST_ID, RequestIdFilter
from app.contract import PlateEvent
from app.contract.logs import JsonFormatter


def _per_call_us(fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def _sent(message: Message) -> None:
    return None


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _requests_us(app: Callable[[Scope, Receive, Send], object], n: int) -> float:
    scope: Scope = {
        "type": "http",
        "headers": [(b"x-api-key", b"k"), (b"content-type", b"application/json")],
    }
    started = time.perf_counter()
    for _ in range(n):
        await app(scope, _receive, _sent)  # type: ignore[misc]
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(JsonFormatter(service="parking-central"))
        handler.addFilter(RequestIdFilter())
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        event = PlateEvent(
            event_id=uuid.uuid4(),
            camera_id="gate-1-in",
            captured_at=datetime.now(UTC),
            plate="51F12345",
            confidence=0.9,
        )
        result = Ingested({"decision": {"action": "open", "reason": "entry_allowed"}}, replay=False)
        REQUEST_ID.set(os.urandom(16).hex())

        def line() -> None:
            log_ingested((event,), (result,), "fast")

        enabled, disabled, middleware = [], [], []
        for _ in range(args.rounds):
            ingest_log.setLevel(logging.NOTSET)
            enabled.append(_per_call_us(line, args.n))
            ingest_log.setLevel(logging.WARNING)
            disabled.append(_per_call_us(line, args.n))
            bare = asyncio.run(_requests_us(_app, args.n))
            wrapped = asyncio.run(_requests_us(HttpFrame(_app, max_bytes=1_000_000), args.n))
            middleware.append(wrapped - bare)
    print(
        json.dumps(
            {
                "ingest_line_us": round(statistics.median(enabled), 2),
                "ingest_line_disabled_us": round(statistics.median(disabled), 3),
                "request_id_middleware_us": round(statistics.median(middleware), 2),
                "n": args.n,
                "rounds": args.rounds,
            }
        )
    )


if __name__ == "__main__":
    main()

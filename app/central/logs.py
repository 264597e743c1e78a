"""Structured JSON logs through the standard logging module, with the request id.

Every HTTP request gets an id (``frame.HttpFrame``): the client's ``X-Request-ID`` when it is sane
(1 to 128 of ``A-Z a-z 0-9 . _ : -``: a UUID, nginx's ``$request_id``, a trace id), a fresh one
otherwise. It is answered in the response's ``X-Request-ID`` and, through a context variable and
``RequestIdFilter``, written as ``request_id`` into every log line of the request, also from the
worker threads that sync routes run in. The line format itself is the contract's
(``app/contract/logs.py``), the one the edge writes too.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from contextvars import ContextVar
from pathlib import Path

from app.contract.logs import TEXT_FORMAT, JsonFormatter

__all__ = [
    "REQUEST_ID",
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "RedactSecrets",
    "RequestIdFilter",
    "accepted_request_id",
    "configure_logging",
    "new_request_id",
]

REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_CHARS = 128
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_REQUEST_ID_CHARS)

# The id of the request being handled; None outside a request (duties, start-up).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def accepted_request_id(value: bytes | None) -> str | None:
    """The client's id when it is safe to log and to answer; None: make one."""
    if value is None or _SANE_REQUEST_ID.fullmatch(value) is None:
        return None
    return value.decode("ascii")


def new_request_id() -> str:
    return os.urandom(16).hex()  # 32 hex digits, the shape of nginx's $request_id


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records made while a request is handled (unless set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


# A credential in a URL's query string (a live feed's ``?token=``), in any logger's message
# (uvicorn logs a WebSocket's path with its query when it accepts it).
_SECRET_IN_QUERY = re.compile(r"([?&](?:token|access_token|api_key|password)=)[^&\s\"']+", re.I)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_IN_QUERY.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def configure_logging(
    *, level: str, json_lines: bool, file: Path | None, service: str = "parking-central"
) -> None:
    formatter: logging.Formatter = (
        JsonFormatter(service=service) if json_lines else logging.Formatter(TEXT_FORMAT)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(file, maxBytes=20_000_000, backupCount=5)
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactSecrets())
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's access log duplicates our request metrics; keep its errors.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")

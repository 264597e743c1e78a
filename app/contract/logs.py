"""The one JSON log line format, written by central and by the edge agents alike.

One JSON object per line: ``ts`` (UTC, milliseconds), ``level``, ``logger``, ``msg`` (the
formatted message), ``service`` (``parking-central``, ``parking-edge``), then every ``extra``
field of the record (``request_id``, ``event_id``, ``camera_id``, ``outcome``, ...), then ``exc``
and ``stack`` when there is a traceback. Search them with ``journalctl -o cat | jq`` or with
``journalctl -o json`` (the line is the journal entry's ``MESSAGE``). Standard library only:
both sides import it, and it does no I/O.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

# The readable form, for a terminal (``--log-format text``, ``log_json = false``).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_TS = "%Y-%m-%dT%H:%M:%S"

# Attributes every LogRecord has: anything else on a record came in through ``extra=`` (or a
# filter, such as central's request id) and is written as a field of its own.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of msg
    "taskName",  # Python 3.12+
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record. The fixed fields win over an ``extra`` of the same name."""

    def __init__(self, *, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        # ISO 8601 in UTC, milliseconds: 2026-01-31T23:59:59.123+00:00 (strftime: about half
        # the cost of datetime's isoformat, on a line per ingested event).
        seconds = time.strftime(_TS, time.gmtime(record.created))
        payload: dict[str, Any] = {
            "ts": f"{seconds}.{int(record.msecs):03d}+00:00",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "service": self.service,
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_") and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str)

"""Log lines as production writes them, captured in the test process.

``create_app`` (and ``configure_logging``) replace the root logger's handlers, pytest's
``caplog`` included, so tests that read log lines attach this handler afterwards."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from app.contract.logs import JsonFormatter


class JsonLines(logging.Handler):
    """Formats every record with the contract's ``JsonFormatter`` and keeps it parsed: a line
    that is not valid JSON fails the test where it is written."""

    def __init__(self, *, service: str, filters: Sequence[logging.Filter] = ()) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter(service=service))
        for item in filters:
            self.addFilter(item)
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.raw.append(text)
        self.lines.append(json.loads(text))

    def about(self, event_id: object) -> list[dict[str, Any]]:
        """The lines that name ``event_id`` as a field."""
        wanted = str(event_id)
        return [
            line
            for line in self.lines
            if line.get("event_id") == wanted or wanted in line.get("event_ids", ())
        ]


@contextmanager
def json_lines(
    *, service: str, level: int = logging.INFO, filters: Sequence[logging.Filter] = ()
) -> Iterator[JsonLines]:
    handler = JsonLines(service=service, filters=filters)
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(before)

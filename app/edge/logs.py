"""The agent's log lines: JSON (the contract's format, the one central writes) or text.

``--log-format json|text``; without it ``PARKING_EDGE_LOG_FORMAT``, and without that JSON when
stderr is the journal (systemd's ``JOURNAL_STREAM`` names it: the unit's log is searched with
``jq``) and text on a terminal. Lines about an event carry ``event_id`` and ``camera_id`` (the
lane) as fields of their own: ``event_fields`` makes them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Literal
from uuid import UUID

from app.contract.logs import TEXT_FORMAT, JsonFormatter

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")
SERVICE = "parking-edge"
ENV = "PARKING_EDGE_LOG_FORMAT"


def stderr_is_journal(environ: Mapping[str, str] | None = None) -> bool:
    """systemd sets ``JOURNAL_STREAM=<device>:<inode>`` of the stream it connected; a child
    with stderr redirected elsewhere inherits the variable, hence the comparison."""
    stream = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # no real stderr (a test's capture)
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


def default_log_format(environ: Mapping[str, str] | None = None) -> LogFormat:
    env = os.environ if environ is None else environ
    chosen = env.get(ENV, "").strip().lower()
    if chosen == "json":
        return "json"
    if chosen == "text":
        return "text"
    return "json" if stderr_is_journal(env) else "text"


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(service=SERVICE)
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(*, level: int, log_format: LogFormat) -> None:
    """The process's one stderr handler (``basicConfig``: a no-op where the root logger has
    handlers already, as under pytest)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)


def event_fields(event_id: UUID | str, camera_id: str, **more: object) -> dict[str, object]:
    """The ``extra`` of a line about one event."""
    return {"event_id": str(event_id), "camera_id": camera_id, **more}

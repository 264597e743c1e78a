"""Wakes a lane's open command poll the moment a command for it is committed.

Committed commands are announced (``lane_command``) and reach every central instance's live
hub: on SQLite straight after COMMIT, on PostgreSQL through NOTIFY. So the poll of a lane's
agent wakes within milliseconds whichever instance its operator used; a poll also looks again
every ``RECHECK_S`` in case a notification was lost while the database moved.
"""

from __future__ import annotations

import asyncio
from typing import Any

RECHECK_S = 2.0


class CommandWaiters:
    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}
        self.closing = False

    def close(self) -> None:
        """The instance is shutting down: every open poll answers now (the lane polls again,
        through the VIP, the other central), so no poll holds up a graceful shutdown."""
        self.closing = True
        for events in self._events.values():
            for event in events:
                event.set()

    def arm(self, camera_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._events.setdefault(camera_id, set()).add(event)
        return event

    def disarm(self, camera_id: str, event: asyncio.Event) -> None:
        events = self._events.get(camera_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._events[camera_id]

    def waiting(self, camera_id: str) -> int:
        return len(self._events.get(camera_id, ()))

    def on_message(self, message: dict[str, Any]) -> None:
        """A hub watcher (runs on the event loop)."""
        if message.get("type") != "lane_command":
            return
        data = message.get("data") or {}
        if data.get("status") != "pending":
            return
        for event in self._events.get(str(data.get("camera_id")), ()):
            event.set()

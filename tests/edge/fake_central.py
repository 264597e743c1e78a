"""A small stand-in for central's lane-command routes (and just enough ingest for an agent).

A real HTTP server in a thread (``http.server``), with the semantics central promises:

* ``GET /api/v1/lanes/{camera_id}/commands?wait_s=N`` (``X-API-Key``): answers as soon as the
  lane has a command that is neither acknowledged nor expired, or ``{"commands": []}`` after N
  seconds; 401 unknown key, 403 another camera's key. Every poll offers again every command not
  acknowledged yet; ``ttl_ms`` is the time left to its expiry when the answer leaves.
* ``POST .../commands/{command_id}/ack`` with a ``CommandAck``: 200 ``{"command_id", "status"}``,
  idempotent; 404 unknown id, 403 another camera's command.
* ``POST /api/v1/events`` and ``/events/batch``: an ``EventAck`` with ``decision`` (OPEN unless
  changed), so a simulator or a lane agent gets its decisions; heartbeats: 204 (kept in
  ``heartbeats``).

Faults for the tests: ``poll_faults`` / ``ack_faults`` (statuses answered to the next polls /
acks), ``keep_offering`` (offer commands again even after their ack, as a central that lost
it), a ``ttl_ms`` fixed per command (``0``: already expired when it arrives).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from app.contract import (
    CameraHeartbeat,
    CommandAck,
    EventAck,
    EventBatchAck,
    GateAction,
    GateDecision,
    GateReason,
    PlateEvent,
    PlateEventBatch,
)

_POLL = re.compile(r"^/api/v1/lanes/([^/]+)/commands$")
_ACK = re.compile(r"^/api/v1/lanes/([^/]+)/commands/([^/]+)/ack$")


@dataclass
class Queued:
    command_id: UUID
    camera_id: str
    expires: float  # on this process's monotonic clock
    fixed_ttl_ms: int | None
    operator: str
    reason: str
    kind: str
    issued_at: datetime
    expires_at: datetime
    acked: bool = False
    offers: int = 0
    offered_at: list[float] = field(default_factory=list)

    def wire(self, now: float) -> dict[str, Any]:
        ttl_ms = self.fixed_ttl_ms
        if ttl_ms is None:
            ttl_ms = max(0, int((self.expires - now) * 1000))
        return {
            "command_id": str(self.command_id),
            "camera_id": self.camera_id,
            "kind": self.kind,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "ttl_ms": ttl_ms,
            "operator": self.operator,
            "reason": self.reason,
        }


class FakeCentral:
    def __init__(self, keys: dict[str, str], *, port: int = 0) -> None:
        self.keys = dict(keys)  # camera id -> key
        self._cond = threading.Condition()
        self.commands: dict[UUID, Queued] = {}
        self.acks: list[tuple[UUID, CommandAck]] = []  # acks answered 200, in order
        self.ack_statuses: list[tuple[UUID, int]] = []  # every ack attempt and its answer
        self.ack_faults: list[int] = []
        self.poll_faults: list[int] = []
        self.keep_offering = False
        self.polls = 0
        self.polls_open = 0
        self.poll_statuses: list[int] = []
        self.decision = GateAction.OPEN
        self.events: list[PlateEvent] = []
        self.heartbeats: list[CameraHeartbeat] = []
        self._closing = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's naming
                fake._get(self)

            def do_POST(self) -> None:
                fake._post(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # -- the test's side -----------------------------------------------------------------------

    def command(
        self,
        camera_id: str,
        *,
        ttl_s: float = 10.0,
        ttl_ms: int | None = None,
        operator: str = "cashier-1",
        reason: str = "paid at the booth",
        kind: str = "open",
        wall_clock_offset: timedelta = timedelta(0),
    ) -> UUID:
        """Queue a command; ``ttl_ms`` fixes what every offer says; ``wall_clock_offset``
        shifts issued_at/expires_at (central's wall clock), which the edge must ignore."""
        now = datetime.now(UTC) + wall_clock_offset
        queued = Queued(
            command_id=uuid.uuid4(),
            camera_id=camera_id,
            expires=time.monotonic() + ttl_s,
            fixed_ttl_ms=ttl_ms,
            operator=operator,
            reason=reason,
            kind=kind,
            issued_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        with self._cond:
            self.commands[queued.command_id] = queued
            self._cond.notify_all()
        return queued.command_id

    def acked(self, command_id: UUID) -> CommandAck | None:
        with self._cond:
            for known, ack in self.acks:
                if known == command_id:
                    return ack
        return None

    def offers(self, command_id: UUID) -> int:
        with self._cond:
            return self.commands[command_id].offers

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- HTTP ------------------------------------------------------------------------------------

    def _camera(self, handler: BaseHTTPRequestHandler, camera_id: str) -> bool:
        key = handler.headers.get("X-API-Key")
        owner = next((cam for cam, k in self.keys.items() if k == key), None)
        if owner is None:
            _answer(handler, 401, {"detail": "unknown key"})
            return False
        if owner != camera_id:
            _answer(handler, 403, {"detail": "another camera's key"})
            return False
        return True

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        match = _POLL.match(url.path)
        if match is None:
            _answer(handler, 404, {"detail": "not found"})
            return
        camera_id = match.group(1)
        if not self._camera(handler, camera_id):
            return
        with self._cond:
            self.polls += 1
            if self.poll_faults:
                status = self.poll_faults.pop(0)
                self.poll_statuses.append(status)
                _answer(handler, status, {"detail": "injected"})
                return
        wait_s = float(parse_qs(url.query).get("wait_s", ["0"])[0])
        deadline = time.monotonic() + wait_s
        with self._cond:
            self.polls_open += 1
            self._cond.notify_all()
            try:
                while True:
                    now = time.monotonic()
                    pending = self._pending(camera_id, now)
                    if pending or self._closing or now >= deadline:
                        break
                    self._cond.wait(deadline - now)
                now = time.monotonic()
                body = {"commands": [q.wire(now) for q in pending]}
                for queued in pending:
                    queued.offers += 1
                    queued.offered_at.append(now)
                self.poll_statuses.append(200)
            finally:
                self.polls_open -= 1
                self._cond.notify_all()
        _answer(handler, 200, body)

    def _pending(self, camera_id: str, now: float) -> list[Queued]:
        return [
            q
            for q in self.commands.values()
            if q.camera_id == camera_id
            and (not q.acked or self.keep_offering)
            and (q.fixed_ttl_ms is not None or q.expires > now)
        ]

    def wait_for_open_poll(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.polls_open == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no command poll was opened")
                self._cond.wait(left)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        path = urlsplit(handler.path).path
        match = _ACK.match(path)
        if match is not None:
            self._ack(handler, match.group(1), match.group(2), body)
        elif path == "/api/v1/events":
            self.events.append(PlateEvent.model_validate_json(body))
            _answer(handler, 200, json.loads(self._event_ack(self.events[-1]).model_dump_json()))
        elif path == "/api/v1/events/batch":
            batch = PlateEventBatch.model_validate_json(body).events
            self.events.extend(batch)
            acks = EventBatchAck(acks=[self._event_ack(e) for e in batch])
            _answer(handler, 200, json.loads(acks.model_dump_json()))
        elif path.endswith("/heartbeat"):
            self.heartbeats.append(CameraHeartbeat.model_validate_json(body))
            _answer(handler, 204, None)
        else:
            _answer(handler, 404, {"detail": "not found"})

    def _event_ack(self, event: PlateEvent) -> EventAck:
        reason = {
            GateAction.OPEN: GateReason.ENTRY_ALLOWED,
            GateAction.HOLD: GateReason.PAYMENT_REQUIRED,
            GateAction.DENY: GateReason.NO_ENTRY_RECORD,
        }[self.decision]
        return EventAck(
            event_id=event.event_id,
            accepted_at=datetime.now(UTC),
            session_id=1,
            decision=GateDecision(action=self.decision, reason=reason),
        )

    def _ack(
        self, handler: BaseHTTPRequestHandler, camera_id: str, raw_id: str, body: bytes
    ) -> None:
        if not self._camera(handler, camera_id):
            return
        try:
            command_id = UUID(raw_id)
        except ValueError:
            _answer(handler, 404, {"detail": "unknown command"})
            return
        with self._cond:
            queued = self.commands.get(command_id)
            if queued is None:
                self.ack_statuses.append((command_id, 404))
                _answer(handler, 404, {"detail": "unknown command"})
                return
            if queued.camera_id != camera_id:
                self.ack_statuses.append((command_id, 403))
                _answer(handler, 403, {"detail": "another camera's command"})
                return
            if self.ack_faults:
                status = self.ack_faults.pop(0)
                self.ack_statuses.append((command_id, status))
                _answer(handler, status, {"detail": "injected"})
                return
            ack = CommandAck.model_validate_json(body)
            self.acks.append((command_id, ack))
            self.ack_statuses.append((command_id, 200))
            queued.acked = True
            self._cond.notify_all()
        _answer(handler, 200, {"command_id": str(command_id), "status": ack.outcome.value})


def _answer(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    data = b"" if body is None else json.dumps(body).encode()
    try:
        handler.send_response(status)
        if body is not None:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except OSError:
        pass  # the client went away (a stopped listener cut its poll)

"""The lane's command channel: operators' orders from central (open the barrier), at most once.

The edge never accepts a connection. Each lane's ``CommandListener`` (one thread) holds a long
poll open to central through the VIP, ``GET /api/v1/lanes/{camera_id}/commands?wait_s=N`` with
the camera's key; central answers as soon as a command for the lane is pending, or with an
empty list after ``wait_s``. Every poll is a fresh request, so a central failover or a VIP move
only means that the next poll lands elsewhere (TCP keepalive notices a connection whose far end
vanished under an open poll within seconds; retries start after ~0.5 s).

Central offers a command again on every poll until the lane acknowledges it, so the lane keeps
every command id it has seen in ``CommandJournal`` (``<data_dir>/commands/commands.db``, SQLite,
WAL, ``synchronous=FULL``) and acts on each at most once:

1. an id already in the journal is never executed again (its outcome is acknowledged again);
2. the deadline is counted on this machine's monotonic clock from the moment the answer
   arrived: ``received + ttl_ms / 1000`` (central's wall clock is never compared with ours);
   a command past it is journaled ``expired``, acknowledged, and nothing moves;
3. ``executing`` is committed before the relay is touched, then the relay pulses
   (``cause="command:<id>"``), then ``pulsed`` (or ``failed`` with the error) is committed,
   then the outcome is acknowledged (``POST .../commands/{id}/ack``). An agent that dies
   between 3's first and second write finds ``executing`` at its next start: the pulse may
   or may not have happened, so it is journaled ``failed`` ("agent restarted during the
   pulse; not repeated"), acknowledged, and never repeated.

Acknowledgements that fail are sent again from the journal (rows not yet acknowledged) on the
listener's loop; a 4xx other than 408/429 drops one with a log line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import httpcore
import httpx
from pydantic import ValidationError

from app.contract import (
    API_PREFIX,
    MAX_COMMAND_WAIT_S,
    CommandAck,
    CommandOutcome,
    LaneCommand,
)
from app.edge import __version__
from app.edge.gate import Relay
from app.edge.metrics import EdgeMetrics
from app.edge.uploader import Backoff, parse_retry_after

log = logging.getLogger(__name__)

DB_NAME = "commands.db"
RESTART_DETAIL = "agent restarted during the pulse; not repeated"
# 4xx answers to an ack that say "try again" rather than "this ack is wrong".
ACK_RETRYABLE_4XX = frozenset({408, 429})
# After a poll that brought only commands the journal knows (central offering again what it
# has no ack for yet), wait at least this long before the next one: no busy loop.
REOFFER_PAUSE_S = 0.2
# An empty answer faster than this did not wait as asked: pause before the next poll.
EARLY_EMPTY_S = 0.5
EARLY_EMPTY_PAUSE_S = 1.0
# How often a running listener prunes the journal.
PRUNE_EVERY_S = 3600.0
# TCP keepalive on the poll's connection: idle seconds, probe interval, probes. A poll whose
# far end vanished (the VIP moved from a crashed host, whose successor answers with a reset)
# fails after ~KEEPIDLE s instead of the read timeout.
KEEPALIVE = (3, 2, 3)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    outcome_at TEXT,
    operator TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    acked INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_commands_unacked ON commands (acked, camera_id);
CREATE INDEX IF NOT EXISTS ix_commands_received ON commands (received_at);
"""


class CommandState(StrEnum):
    EXECUTING = "executing"  # committed before the relay is touched
    PULSED = "pulsed"
    EXPIRED = "expired"
    FAILED = "failed"


class AckState:
    """The journal's ``acked`` column."""

    PENDING = 0  # central does not have this outcome yet
    ACKED = 1
    DROPPED = 2  # central refused the ack (4xx): not sent again


@dataclass(frozen=True, slots=True)
class JournalEntry:
    command_id: UUID
    camera_id: str
    received_at: float  # unix time, for pruning and people; never for the deadline
    state: CommandState
    detail: str
    outcome_at: datetime | None
    operator: str
    reason: str
    acked: int

    def ack(self) -> CommandAck:
        """The acknowledgement of this outcome (the same ``at`` every time it is sent)."""
        if self.state is CommandState.EXECUTING:
            raise ValueError(f"command {self.command_id} has no outcome yet")
        return CommandAck(
            outcome=CommandOutcome(self.state.value),
            at=self.outcome_at or datetime.now(UTC),
            detail=self.detail[:300],
        )


class CommandJournal:
    """Every command id this edge has seen, with what it did about it; one row per id.

    Thread-safe (several lanes of one process may share it). Each write is its own committed,
    fsynced transaction.
    """

    def __init__(
        self,
        directory: Path,
        *,
        keep_days: float = 7.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / DB_NAME
        self._clock = clock
        self._keep_s = keep_days * 86400
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.recovered = self._recover()
        self.prune()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError(f"command journal {self.path} is closed")
        return self._db

    def _recover(self) -> list[UUID]:
        """Rows left ``executing`` by an agent that died at the pulse become ``failed``."""
        with self._lock:
            db = self._conn()
            rows = db.execute(
                "SELECT command_id FROM commands WHERE state = ?", (CommandState.EXECUTING,)
            ).fetchall()
            if rows:
                db.execute(
                    "UPDATE commands SET state = ?, detail = ?, outcome_at = ?, acked = ?"
                    " WHERE state = ?",
                    (
                        CommandState.FAILED,
                        RESTART_DETAIL,
                        self._now_iso(),
                        AckState.PENDING,
                        CommandState.EXECUTING,
                    ),
                )
        recovered = [UUID(row[0]) for row in rows]
        for command_id in recovered:
            log.warning("command %s: %s", command_id, RESTART_DETAIL)
        return recovered

    def _now_iso(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).isoformat()

    def get(self, command_id: UUID) -> JournalEntry | None:
        with self._lock:
            row = (
                self._conn()
                .execute(f"{_SELECT} WHERE command_id = ?", (str(command_id),))
                .fetchone()
            )
        return _entry(row) if row else None

    def begin(
        self, command_id: UUID, camera_id: str, *, operator: str = "", reason: str = ""
    ) -> bool:
        """Commit ``executing`` for a new id; False (nothing written) when the id is known."""
        return self._insert(command_id, camera_id, CommandState.EXECUTING, "", operator, reason)

    def record(
        self,
        command_id: UUID,
        camera_id: str,
        state: CommandState,
        detail: str = "",
        *,
        operator: str = "",
        reason: str = "",
    ) -> bool:
        """Commit a new id straight with its outcome (expired, or refused unread); False when
        the id is known."""
        if state is CommandState.EXECUTING:
            raise ValueError("use begin() for a command about to be executed")
        return self._insert(command_id, camera_id, state, detail, operator, reason)

    def _insert(
        self,
        command_id: UUID,
        camera_id: str,
        state: CommandState,
        detail: str,
        operator: str,
        reason: str,
    ) -> bool:
        outcome_at = None if state is CommandState.EXECUTING else self._now_iso()
        with self._lock:
            cursor = self._conn().execute(
                "INSERT OR IGNORE INTO commands (command_id, camera_id, received_at, state,"
                " detail, outcome_at, operator, reason, acked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(command_id),
                    camera_id,
                    self._clock(),
                    state,
                    detail[:300],
                    outcome_at,
                    operator[:100],
                    reason[:300],
                    AckState.PENDING,
                ),
            )
            return cursor.rowcount == 1

    def settle(self, command_id: UUID, state: CommandState, detail: str = "") -> JournalEntry:
        """Commit the outcome of a command that was ``executing``."""
        if state is CommandState.EXECUTING:
            raise ValueError("settle() records an outcome")
        with self._lock:
            self._conn().execute(
                "UPDATE commands SET state = ?, detail = ?, outcome_at = ?"
                " WHERE command_id = ? AND state = ?",
                (state, detail[:300], self._now_iso(), str(command_id), CommandState.EXECUTING),
            )
        entry = self.get(command_id)
        if entry is None:
            raise KeyError(f"command {command_id} is not in the journal")
        return entry

    def mark_acked(self, command_id: UUID, *, dropped: bool = False) -> None:
        with self._lock:
            self._conn().execute(
                "UPDATE commands SET acked = ? WHERE command_id = ?",
                (AckState.DROPPED if dropped else AckState.ACKED, str(command_id)),
            )

    def requeue_ack(self, command_id: UUID) -> None:
        """Central offered an acknowledged command again: it lacks the ack; send it again."""
        with self._lock:
            self._conn().execute(
                "UPDATE commands SET acked = ? WHERE command_id = ? AND acked = ? AND state != ?",
                (AckState.PENDING, str(command_id), AckState.ACKED, CommandState.EXECUTING),
            )

    def unacked(self, camera_id: str | None = None, limit: int = 100) -> list[JournalEntry]:
        """Finished commands whose outcome central does not have yet, oldest first."""
        query = f"{_SELECT} WHERE acked = ? AND state != ?"
        args: list[object] = [AckState.PENDING, CommandState.EXECUTING]
        if camera_id is not None:
            query += " AND camera_id = ?"
            args.append(camera_id)
        with self._lock:
            rows = (
                self._conn()
                .execute(query + " ORDER BY received_at LIMIT ?", (*args, limit))
                .fetchall()
            )
        return [_entry(row) for row in rows]

    def entries(self, camera_id: str | None = None) -> list[JournalEntry]:
        """Every row, oldest first (tests, inspection)."""
        query, args = _SELECT, []
        if camera_id is not None:
            query, args = f"{_SELECT} WHERE camera_id = ?", [camera_id]
        with self._lock:
            rows = self._conn().execute(query + " ORDER BY received_at", args).fetchall()
        return [_entry(row) for row in rows]

    def prune(self) -> int:
        """Forget finished commands older than ``keep_days`` (central re-offers a command only
        until its expiry, a minute at most)."""
        with self._lock:
            cursor = self._conn().execute(
                "DELETE FROM commands WHERE received_at < ? AND state != ?",
                (self._clock() - self._keep_s, CommandState.EXECUTING),
            )
        if cursor.rowcount:
            log.info("command journal: pruned %d old command(s)", cursor.rowcount)
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()
                self._db = None


_SELECT = (
    "SELECT command_id, camera_id, received_at, state, detail, outcome_at, operator, reason,"
    " acked FROM commands"
)


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    return JournalEntry(
        command_id=UUID(row[0]),
        camera_id=row[1],
        received_at=float(row[2]),
        state=CommandState(row[3]),
        detail=row[4],
        outcome_at=datetime.fromisoformat(row[5]) if row[5] else None,
        operator=row[6],
        reason=row[7],
        acked=int(row[8]),
    )


# -- an HTTP transport whose open poll can be cut from another thread ---------------------------


class _TrackedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, owner: _TrackingBackend) -> None:
        self._inner = inner
        self._owner = owner
        owner.add(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._owner.discard(self)
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._owner.discard(self)
        return _TrackedStream(
            self._inner.start_tls(ssl_context, server_hostname, timeout), self._owner
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def shutdown(self) -> None:
        sock = self._inner.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed, or never connected
                sock.shutdown(socket.SHUT_RDWR)


class _TrackingBackend(httpcore.NetworkBackend):
    """httpcore's own backend, remembering its open streams so ``interrupt`` can shut them."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._streams: set[_TrackedStream] = set()
        self._lock = threading.Lock()
        self._interrupted = False

    def add(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._streams.add(stream)
            interrupted = self._interrupted
        if interrupted:  # connected while being interrupted: cut it too
            stream.shutdown()

    def discard(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self._refuse_if_interrupted()
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _TrackedStream(stream, self)

    def _refuse_if_interrupted(self) -> None:
        with self._lock:
            if self._interrupted:
                raise httpcore.ConnectError("the command channel is stopping")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self._refuse_if_interrupted()
        return _TrackedStream(self._inner.connect_unix_socket(path, timeout, socket_options), self)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def interrupt(self) -> None:
        """Shut every open connection (a thread blocked reading one gets an error at once) and
        refuse new ones from now on."""
        with self._lock:
            self._interrupted = True
            streams = list(self._streams)
        for stream in streams:
            stream.shutdown()


def _keepalive_options() -> list[httpcore.SOCKET_OPTION]:
    options: list[httpcore.SOCKET_OPTION] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    idle, interval, count = KEEPALIVE
    for name, value in (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", count),
    ):
        if hasattr(socket, name):  # Linux; elsewhere the OS defaults
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


class InterruptibleTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` with TCP keepalive whose connections ``interrupt()`` shuts from
    another thread (closing an httpx client does not wake a thread blocked in a read); after
    it, new connections are refused."""

    def __init__(self, *, verify: bool | str = True) -> None:
        # A CA file path becomes a context (httpx deprecates verify=<path>).
        context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        super().__init__(verify=context, socket_options=_keepalive_options())
        self._backend = _TrackingBackend()
        pool = getattr(self, "_pool", None)
        # httpcore's pool takes its backend at construction; httpx does not pass one through.
        self.interruptible = isinstance(pool, httpcore.ConnectionPool) and hasattr(
            pool, "_network_backend"
        )
        if self.interruptible:
            pool._network_backend = self._backend  # type: ignore[union-attr]
        else:  # pragma: no cover - another httpx/httpcore layout: stop() still returns
            log.debug("command channel: polls cannot be interrupted with this httpx")

    def interrupt(self) -> None:
        self._backend.interrupt()


# -- the listener ------------------------------------------------------------------------------


class PollFailed(Exception):
    def __init__(self, kind: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one offered command came to in this poll."""

    command_id: UUID
    outcome: CommandOutcome | None  # None: the journal knew it (not executed again)
    latency_s: float | None = None  # receipt to pulse, when it pulsed

    @property
    def duplicate(self) -> bool:
        return self.outcome is None


class CommandListener:
    """One lane's command channel: long poll, journal, relay, ack. One daemon thread."""

    def __init__(
        self,
        base_url: str,
        camera_id: str,
        api_key: str,
        relay: Relay,
        journal: CommandJournal,
        *,
        open_pulse_s: float = 1.0,
        wait_s: int = 20,
        retry_cap_s: float = 10.0,
        retry_base_s: float = 0.5,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        verify: bool | str = True,
        metrics: EdgeMetrics | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= wait_s <= MAX_COMMAND_WAIT_S:
            raise ValueError(f"wait_s must be within 1..{MAX_COMMAND_WAIT_S}")
        self.camera_id = camera_id
        self.relay = relay
        self.journal = journal
        self.open_pulse_s = open_pulse_s
        self.wait_s = wait_s
        self._clock = clock
        self._metrics = metrics
        self._backoff = Backoff(
            base_s=retry_base_s,
            cap_s=retry_cap_s,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not secrecy
        )
        self._read_margin_s = read_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._transport = InterruptibleTransport(verify=verify)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + API_PREFIX,
            transport=self._transport,
            # A poll is held up to wait_s by design: the read timeout is on top of it.
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            headers={"X-API-Key": api_key, "User-Agent": f"parking-edge/{__version__}"},
        )
        self._stop = threading.Event()
        self._busy = threading.Lock()  # held while a poll's commands are handled
        self._thread: threading.Thread | None = None
        self._next_prune = clock() + PRUNE_EVERY_S
        self.polls = 0
        self.poll_failures = 0
        self.last_error: str | None = None
        self.acks_sent = 0

    # -- one step at a time (the thread's parts; usable without it in tests) -----------------

    def poll_once(self, wait_s: int | None = None) -> list[CommandResult]:
        """One long poll; executes what it brings. Raises ``PollFailed``."""
        wait = self.wait_s if wait_s is None else max(1, min(int(wait_s), self.wait_s))
        try:
            response = self._http.get(
                f"/lanes/{self.camera_id}/commands",
                params={"wait_s": wait},
                timeout=httpx.Timeout(wait + self._read_margin_s, connect=self._connect_timeout_s),
            )
        except httpx.HTTPError as exc:
            raise PollFailed("transport", f"{type(exc).__name__}: {exc}") from exc
        received = self._clock()
        self.polls += 1
        if response.status_code != 200:
            raise _poll_failure(response)
        try:
            payload = response.json()
            items = payload["commands"]
            if not isinstance(items, list):
                raise TypeError("commands is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            raise PollFailed("unreadable", f"{type(exc).__name__}: {exc}") from exc
        if self._metrics is not None:
            self._metrics.command_channel_up.labels(self.camera_id).set(1)
        return self.handle(items, received)

    def handle(self, items: list[Any], received: float) -> list[CommandResult]:
        """Act on the commands of one answer that arrived at ``received`` (monotonic)."""
        results: list[CommandResult] = []
        with self._busy:
            for item in items:
                if self._stop.is_set():
                    log.info(
                        "command channel %s: stopping; commands left to central", self.camera_id
                    )
                    break
                result = self._one(item, received)
                if result is not None:
                    results.append(result)
        return results

    def _one(self, item: Any, received: float) -> CommandResult | None:
        try:
            command = LaneCommand.model_validate(item)
        except ValidationError as exc:
            return self._unreadable(item, exc)
        command_id = command.command_id
        known = self.journal.get(command_id)
        if known is not None:
            if self._metrics is not None:
                self._metrics.command_reoffers.labels(self.camera_id).inc()
            if known.acked == AckState.ACKED:
                # Central has no ack of it after all: send it again (a refused one, no).
                self.journal.requeue_ack(command_id)
            log.debug("command %s offered again (%s): not executed again", command_id, known.state)
            return CommandResult(command_id, None)
        if command.camera_id != self.camera_id:
            detail = f"addressed to lane {command.camera_id[:64]!r}, not {self.camera_id!r}"
            return self._refuse(command, CommandState.FAILED, detail)
        deadline = received + command.ttl_ms / 1000.0
        if self._clock() >= deadline:
            detail = f"arrived with {command.ttl_ms} ms left; too late to act"
            return self._refuse(command, CommandState.EXPIRED, detail)
        if not self.journal.begin(
            command_id, self.camera_id, operator=command.operator, reason=command.reason
        ):
            return CommandResult(command_id, None)  # a twin of this answer got there first
        # Committed: from here on this id is never executed again, whatever happens.
        latency: float | None = None
        before_pulse = self._clock()
        if before_pulse >= deadline:
            state = CommandState.EXPIRED
            detail = (
                f"its time ran out before the pulse ({(before_pulse - received) * 1000:.0f} ms"
                f" after receipt, {command.ttl_ms} ms given)"
            )
        else:
            try:
                self.relay.pulse(self.open_pulse_s, cause=f"command:{command_id}")
            except Exception as exc:
                state, detail = CommandState.FAILED, f"relay: {type(exc).__name__}: {exc}"
            else:
                state, detail = CommandState.PULSED, ""
                latency = self._clock() - received
        self.journal.settle(command_id, state, detail)
        self._count(command, state, detail, latency)
        return CommandResult(command_id, CommandOutcome(state.value), latency)

    def _refuse(self, command: LaneCommand, state: CommandState, detail: str) -> CommandResult:
        """Journal a new command with its outcome straight away: nothing moves."""
        if not self.journal.record(
            command.command_id,
            self.camera_id,
            state,
            detail,
            operator=command.operator,
            reason=command.reason,
        ):
            return CommandResult(command.command_id, None)
        self._count(command, state, detail, None)
        return CommandResult(command.command_id, CommandOutcome(state.value))

    def _unreadable(self, item: Any, error: ValidationError) -> CommandResult | None:
        """A command this agent cannot read (a newer kind?): never executed; failed if it has an
        id to answer to."""
        raw_id = item.get("command_id") if isinstance(item, dict) else None
        try:
            command_id = UUID(str(raw_id))
        except ValueError:
            log.error(
                "command channel %s: an unreadable command without id: %s", self.camera_id, error
            )
            return None
        detail = f"unreadable command: {error.error_count()} error(s): {error.errors()[0]['msg']}"
        if not self.journal.record(command_id, self.camera_id, CommandState.FAILED, detail):
            return CommandResult(command_id, None)
        log.error("command %s: %s (%s)", command_id, detail, json.dumps(item, default=str)[:300])
        if self._metrics is not None:
            self._metrics.commands.labels(self.camera_id, CommandState.FAILED.value).inc()
        return CommandResult(command_id, CommandOutcome.FAILED)

    def _count(
        self, command: LaneCommand, state: CommandState, detail: str, latency: float | None
    ) -> None:
        if self._metrics is not None:
            self._metrics.commands.labels(self.camera_id, state.value).inc()
            if latency is not None:
                self._metrics.command_latency.observe(latency)
        level = logging.INFO if state is CommandState.PULSED else logging.WARNING
        log.log(
            level,
            "command %s for %s by %r (%s): %s%s%s",
            command.command_id,
            self.camera_id,
            command.operator,
            command.reason or "no reason given",
            state.value,
            f" {latency * 1000:.0f} ms after receipt" if latency is not None else "",
            f" ({detail})" if detail else "",
        )

    def send_pending_acks(self) -> bool:
        """Send every outcome central does not have yet; True when none is left."""
        for entry in self.journal.unacked(self.camera_id):
            if self._stop.is_set():
                return False
            if not self._send_ack(entry):
                return False
        return True

    def _send_ack(self, entry: JournalEntry) -> bool:
        """True when the ack is done with (central has it, or refused it for good)."""
        path = f"/lanes/{self.camera_id}/commands/{entry.command_id}/ack"
        try:
            response = self._http.post(
                path,
                content=entry.ack().model_dump_json().encode(),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            self._ack_counted("failed")
            self.last_error = f"ack: {type(exc).__name__}: {exc}"[:500]
            log.info("command %s: ack not sent (%s); will retry", entry.command_id, self.last_error)
            return False
        status = response.status_code
        if 200 <= status < 300:
            self.journal.mark_acked(entry.command_id)
            self.acks_sent += 1
            self._ack_counted("ok")
            return True
        if 400 <= status < 500 and status not in ACK_RETRYABLE_4XX:
            self.journal.mark_acked(entry.command_id, dropped=True)
            self._ack_counted("dropped")
            log.warning(
                "command %s: central refused the ack (%s %s): dropped",
                entry.command_id,
                status,
                response.text[:200],
            )
            return True
        self._ack_counted("failed")
        self.last_error = f"ack: http_{status}: {response.text[:200]}"
        log.info("command %s: ack answered %s; will retry", entry.command_id, status)
        return False

    def _ack_counted(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.command_acks.labels(self.camera_id, result).inc()

    # -- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"commands-{self.camera_id}", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        poll_failures = 0
        ack_failures = 0
        next_ack_at = 0.0
        while not self._stop.is_set():
            try:
                acks_pending = False
                if self._clock() >= next_ack_at:
                    if self.send_pending_acks():
                        ack_failures = 0
                    else:
                        ack_failures += 1
                        next_ack_at = self._clock() + max(
                            REOFFER_PAUSE_S, self._backoff.delay(ack_failures)
                        )
                        acks_pending = True
                else:
                    acks_pending = True
                if self._stop.is_set():
                    break
                # The first poll (and the first after a failure) is short, so that the channel
                # is known up (parking_edge_command_channel_up) within a second; while acks
                # wait, polls are short too, so they are retried soon.
                wait = self.wait_s if self.polls and not poll_failures else 1
                if acks_pending:
                    wait = max(1, min(wait, math.ceil(next_ack_at - self._clock())))
                asked = self._clock()
                results = self.poll_once(wait)
                if poll_failures:
                    log.info("command channel %s: connected again", self.camera_id)
                poll_failures = 0
                self.last_error = None
                if results and all(r.duplicate for r in results):
                    # Central offers again what it has no ack of: wait for the ack's retry.
                    self._stop.wait(max(REOFFER_PAUSE_S, next_ack_at - self._clock()))
                elif not results and self._clock() - asked < EARLY_EMPTY_S:
                    # An empty answer that did not wait (a proxy, a broken central): no busy loop.
                    log.debug("command channel %s: empty answer at once", self.camera_id)
                    self._stop.wait(EARLY_EMPTY_PAUSE_S)
            except PollFailed as failure:
                if self._stop.is_set():
                    break
                poll_failures += 1
                self.poll_failures += 1
                self.last_error = str(failure)[:500]
                if self._metrics is not None:
                    self._metrics.command_poll_errors.labels(self.camera_id, failure.kind).inc()
                    self._metrics.command_channel_up.labels(self.camera_id).set(0)
                delay = self._backoff.delay(poll_failures)
                if failure.retry_after_s is not None:
                    delay = max(delay, failure.retry_after_s)
                if poll_failures == 1 or poll_failures % 10 == 0:
                    level = (
                        logging.ERROR
                        if failure.kind in ("http_401", "http_403")
                        else logging.WARNING
                    )
                    log.log(
                        level,
                        "command channel %s: poll failed (%d in a row): %s; next in %.2fs",
                        self.camera_id,
                        poll_failures,
                        self.last_error,
                        delay,
                    )
                self._stop.wait(delay)
            except Exception:  # a bug or a failing disk must not end the channel for good
                if self._stop.is_set():
                    break
                poll_failures += 1
                log.exception("command channel %s: unexpected error", self.camera_id)
                self._stop.wait(self._backoff.ceiling(poll_failures))
            if self._clock() >= self._next_prune and not self._stop.is_set():
                self._next_prune = self._clock() + PRUNE_EVERY_S
                try:
                    self.journal.prune()
                except sqlite3.Error:
                    log.exception("command journal: prune failed")

    def stop(self, timeout_s: float = 1.5) -> None:
        """Stop polling: cuts an open poll, waits (bounded) for the thread, closes the client.
        A command that arrives after this is called is not executed."""
        self._stop.set()
        self._transport.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout_s)
            if thread.is_alive():
                log.warning("command channel %s: thread still busy after stop", self.camera_id)
        # The handling of an answer in progress finishes first (a pulse is journaled whole).
        if self._busy.acquire(timeout=timeout_s):
            self._busy.release()
        self._http.close()
        if self._metrics is not None:
            self._metrics.command_channel_up.labels(self.camera_id).set(0)


def _poll_failure(response: httpx.Response) -> PollFailed:
    status = response.status_code
    detail = response.text[:200]
    if status == 404:
        detail = f"central does not serve lane commands here (an older central?): {detail}"
    elif status in (401, 403):
        detail = f"central refuses this camera's key: {detail}"
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    return PollFailed(f"http_{status}", detail, retry_after)

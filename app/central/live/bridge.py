"""Carries announced messages from committed transactions to every instance's hub."""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import threading
from typing import Any

import orjson
import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.central.core.hub import LiveHub
from app.central.live.service import CHANNEL, PENDING_KEY

log = logging.getLogger(__name__)


def install(factory: sessionmaker[Session], hub: LiveHub, *, postgres: bool) -> None:
    """Hook the session factory so committed announcements reach the hub(s)."""

    @event.listens_for(factory, "after_rollback")
    def _drop(session: Session) -> None:
        session.info.pop(PENDING_KEY, None)

    if postgres:

        @event.listens_for(factory, "before_commit")
        def _notify(session: Session) -> None:
            # The transaction's messages in as few NOTIFYs as fit PostgreSQL's 8000-byte payload
            # limit, all in one statement straight to the driver (no ORM execution): one
            # round trip, each chunk its own parameter. (One array of them all was tried too:
            # a JSON text inside an array literal has every quote escaped, which cost more.)
            payloads = _payloads(session.info.pop(PENDING_KEY, []))
            if payloads:
                params = tuple(value for text in payloads for value in (CHANNEL, text))
                session.connection().exec_driver_sql(notify_statement(len(payloads)), params)

    else:

        @event.listens_for(factory, "after_commit")
        def _deliver(session: Session) -> None:
            hub.deliver(session.info.pop(PENDING_KEY, []))


NOTIFY_LIMIT = 7900


@functools.cache
def notify_statement(chunks: int) -> str:
    """One SELECT that sends ``chunks`` notifications, in order (a target list is evaluated
    left to right); a few texts in all, each prepared by the driver once it repeats."""
    return "SELECT " + ", ".join(["pg_notify(%s, %s)"] * chunks)


def _payloads(messages: list[dict[str, Any]]) -> list[str]:
    """JSON arrays of the messages, each at most ``NOTIFY_LIMIT`` bytes (PostgreSQL counts the
    payload in bytes: orjson writes UTF-8) unless one message alone is longer."""
    chunks: list[str] = []
    batch: list[bytes] = []
    size = 2
    for message in messages:
        text = orjson.dumps(message)
        if batch and size + len(text) + 1 > NOTIFY_LIMIT:
            chunks.append((b"[" + b",".join(batch) + b"]").decode())
            batch, size = [], 2
        batch.append(text)
        size += len(text) + 1
    if batch:
        chunks.append((b"[" + b",".join(batch) + b"]").decode())
    return chunks


def libpq_conninfo(sqlalchemy_url: str, **defaults: Any) -> str:
    """Turn a SQLAlchemy PostgreSQL URL (multi-host included) into a libpq conninfo string;
    ``defaults`` for what the URL does not say (TCP keepalives...)."""
    url = make_url(sqlalchemy_url)
    params: dict[str, Any] = {}
    if url.username:
        params["user"] = url.username
    if url.password:
        params["password"] = url.password
    if url.database:
        params["dbname"] = url.database
    hosts: list[str] = []
    ports: list[str] = []
    if url.host:
        hosts.append(url.host)
        ports.append(str(url.port or 5432))
    for key, value in url.query.items():
        values = value if isinstance(value, tuple) else (value,)
        if key == "host":
            for item in values:
                host, _, port = item.partition(":")
                hosts.append(host)
                ports.append(port or "5432")
        else:
            params[key] = values[-1]
    if hosts:
        params["host"] = ",".join(hosts)
        params["port"] = ",".join(ports)
    params.setdefault("connect_timeout", "2")
    for key, value in defaults.items():
        params.setdefault(key, str(value))
    return psycopg.conninfo.make_conninfo(**params)


class PgListener:
    """A thread that LISTENs on the live channel and hands messages to the hub.

    Survives database failover: on any error it reconnects (to whichever host is the primary
    now) with capped backoff. Messages committed while it was disconnected are not replayed;
    dashboards re-read state on reconnect. It sleeps in ``select`` on the connection's socket
    and a wake-up socket, so ``stop`` returns at once instead of after a polling interval (it
    used to wait up to a second in ``notifies(timeout=1)``: every shutdown and every test app's
    teardown paid it).
    """

    # A wake-up without traffic now and then; nothing depends on it.
    IDLE_WAKE_S = 30.0

    def __init__(self, conninfo: str, hub: LiveHub) -> None:
        self._conninfo = conninfo
        self._hub = hub
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="pg-live-listener", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay = 0.5
                    self._listen(conn)
            except (psycopg.Error, OSError) as error:
                self.connected.clear()
                if self._stop.is_set():
                    break
                log.warning("live listener lost the database: %s", error)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        """Deliver notifications until stopped; a lost connection raises out of here."""
        wake = self._wake_r.fileno()
        while not self._stop.is_set():
            # Take what has arrived without waiting: notifications psycopg already holds (one
            # that came with LISTEN's answer) first, then whatever the socket has. A broken
            # connection raises here; a packet with no notification yields nothing.
            for note in conn.notifies(timeout=0):
                self._hub.deliver(orjson.loads(note.payload))
            ready, _, _ = select.select([conn.fileno(), wake], [], [], self.IDLE_WAKE_S)
            if wake in ready:
                return

"""Group commit for single-event requests.

Every camera posts its events one by one, so under load many requests wait for the database
at the same moment. Instead of one transaction (and one worker thread, one commit, one NOTIFY)
each, requests that arrive while a batch is being written queue up and go together in the next
one: ``events.service.ingest_many`` decides them in arrival order in one transaction, exactly as
if each had committed alone. Each request still gets its own answer, its own replay header and
its own error: a domain error (409) concerns that event alone, a lost race replays the events
one by one (in ``ingest_many``, the only layer that retries), and only a database outage (503)
is shared.

The batch runs in the database session of the request that started it (so dependency overrides
keep working), or, when that request brought none (the fast path without an override), in a
session of its own from ``sessions``: one per batch instead of one per request. A request that
brought its session waits for its batch shielded from cancellation, so that session is never
closed while the batch uses it; one without waits plainly (a client gone before its answer
finds its event stored when it sends it again: a replay).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from app.central.core.identity import CameraIdentity
from app.central.events.service import Ingested, IngestPolicy, Item, Result, ingest_many
from app.contract import PlateEvent


@dataclass
class _Waiting:
    db: Session | None
    item: Item
    future: asyncio.Future[Result]


class WriteCombiner:
    """Queues single events and writes them in batches of at most ``max_batch``, with at most
    ``concurrency`` batches in flight (1 on SQLite: it has one writer anyway)."""

    def __init__(
        self,
        policy: IngestPolicy,
        *,
        sessions: sessionmaker[Session],
        max_batch: int = 64,
        concurrency: int = 2,
    ) -> None:
        self.policy = policy
        self.sessions = sessions
        self.max_batch = max_batch
        self.concurrency = concurrency
        self._queue: list[_Waiting] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.events = 0

    async def submit(
        self, db: Session | None, camera: CameraIdentity, event: PlateEvent
    ) -> Ingested:
        """``db``: the request's session, or None for a session of the batch's own."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(db, (camera, event), future))
        if self._in_flight < self.concurrency:
            self._launch()
        if db is None:  # nothing of the request's own is in use: a cancelled wait harms nothing
            result = await future
        else:
            with anyio.CancelScope(shield=True):  # the batch may be using the request's session
                result = await future
        if isinstance(result, Exception):
            raise result
        return result

    def _launch(self) -> None:
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Waiting]) -> None:
        results: list[Result]
        try:
            results = await anyio.to_thread.run_sync(self._write, batch)
        except Exception as error:  # never leave a request waiting
            results = [error] * len(batch)
        finally:
            self._in_flight -= 1
            if self._queue and self._in_flight < self.concurrency:
                self._launch()
        self.batches += 1
        self.events += len(batch)
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(result)

    def _write(self, batch: list[_Waiting]) -> list[Result]:
        """In a worker thread: one transaction for the whole batch (``ingest_many`` replays
        it one by one if needed; what it raises is every request's error, in ``_run``)."""
        items = [w.item for w in batch]
        db = batch[0].db
        if db is not None:
            return ingest_many(db, items, policy=self.policy)
        with self.sessions() as own:
            return ingest_many(own, items, policy=self.policy)

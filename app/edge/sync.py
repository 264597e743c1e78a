"""The edge's second line to central: keeps the local lists current and reports offline
decisions once central answers again.

One thread. Every ``interval_s`` (and at once when woken) it sends ``GET /api/v1/edge/lists``
with ``If-None-Match`` (a 304 costs a few bytes) and reports unreported offline decisions in
batches (``POST /api/v1/edge/offline-decisions``). Failures wait with capped backoff; nothing
is lost, the journal and the local copy are on disk.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx

from app.contract import (
    API_PREFIX,
    MAX_OFFLINE_DECISIONS,
    EdgeLists,
    OfflineDecisionAck,
    OfflineDecisionReport,
)
from app.edge.decisions import OfflineJournal
from app.edge.lists import LocalLists

log = logging.getLogger(__name__)


class EdgeSync:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        lists: LocalLists,
        journal: OfflineJournal,
        *,
        interval_s: float = 60.0,
        retry_cap_s: float = 30.0,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        verify: bool | str = True,
    ) -> None:
        self.lists = lists
        self.journal = journal
        self.interval_s = interval_s
        self.retry_cap_s = retry_cap_s
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key},
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            verify=verify,
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.syncs_ok = 0
        self.not_modified = 0
        self.reported = 0
        self.last_error: str | None = None

    # -- one round: usable without the thread (tests, CLI) --------------------------------

    def sync_lists(self) -> bool:
        """True when the local copy is current (changed or confirmed by 304)."""
        headers = {}
        etag = self.lists.etag
        if etag:
            headers["If-None-Match"] = etag
        response = self._client.get(f"{API_PREFIX}/edge/lists", headers=headers)
        if response.status_code == 304:
            self.lists.confirm()
            self.not_modified += 1
            return True
        response.raise_for_status()
        fresh = EdgeLists.model_validate_json(response.content)
        new_etag = response.headers.get("ETag")
        if new_etag != etag:
            log.info(
                "lists: synced %s (%d allow, %d deny, %d passes)",
                new_etag,
                len(fresh.allow),
                len(fresh.deny),
                len(fresh.passes),
            )
        self.lists.replace(fresh, new_etag)
        self.syncs_ok += 1
        return True

    def report(self) -> int:
        """Send every unreported decision; returns how many central acknowledged."""
        sent = 0
        while True:
            pending = self.journal.unreported(MAX_OFFLINE_DECISIONS)
            if not pending:
                return sent
            body = OfflineDecisionReport(decisions=pending).model_dump_json()
            response = self._client.post(
                f"{API_PREFIX}/edge/offline-decisions",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            response.raise_for_status()
            ack = OfflineDecisionAck.model_validate_json(response.content)
            self.journal.mark_reported([d.event_id for d in pending])
            sent += len(pending)
            self.reported += len(pending)
            log.info("offline decisions reported: %d (%d new at central)", len(pending), ack.stored)

    def round(self) -> None:
        self.report()
        self.sync_lists()

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edge-sync", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.round()
                failures = 0
                self.last_error = None
                delay = self.interval_s
            except (httpx.HTTPError, ValueError) as exc:
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                delay = min(self.retry_cap_s, 1.0 * 2 ** min(failures - 1, 10))
                if failures == 1 or failures % 10 == 0:
                    log.warning("edge sync failed (%d in a row): %s", failures, self.last_error)
            except Exception:
                failures += 1
                delay = self.retry_cap_s
                log.exception("edge sync: unexpected error")
            elapsed = time.monotonic() - started
            self._wake.wait(max(0.0, delay - elapsed))
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._client.close()

"""The edge's copy of its lot's allow/deny lists and passes, for gate decisions without central.

Kept in ``<data_dir>/lists/lists.json`` (written to a temp file, fsynced, renamed, directory
fsynced), so it survives restarts and power loss; synced from ``GET /api/v1/edge/lists`` with
``If-None-Match`` (see ``sync.py``). When central is silent past the gate deadline, ``decide``
says: deny-listed -> keep closed, allow-listed or a valid pass -> open, else None (the
configured offline policy decides).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from app.contract import (
    EdgeLists,
    GateAction,
    GateReason,
    ListedPlate,
    OfflineBasis,
    plate_match_key,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListDecision:
    action: GateAction
    reason: GateReason
    basis: OfflineBasis


@dataclass(frozen=True, slots=True)
class ListsSnapshot:
    lists: EdgeLists
    etag: str | None
    fetched_at: float  # wall clock (time.time()) of the last 200 or 304


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalLists:
    """Thread-safe: the sync thread replaces the copy while gate threads read it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "lists.json"
        self._lock = threading.Lock()
        self._current: ListsSnapshot | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            snapshot = ListsSnapshot(
                lists=EdgeLists.model_validate(raw["lists"]),
                etag=raw.get("etag"),
                fetched_at=float(raw.get("fetched_at", 0.0)),
            )
        except FileNotFoundError:
            log.info("lists: no local copy yet at %s", self.path)
            return
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
            # A damaged copy is no copy: decide by the offline policy until the next sync.
            log.error("lists: ignoring unreadable local copy %s: %s", self.path, exc)
            return
        self._install(snapshot)
        log.info(
            "lists: local copy %s (%d allow, %d deny, %d passes)",
            snapshot.etag,
            len(snapshot.lists.allow),
            len(snapshot.lists.deny),
            len(snapshot.lists.passes),
        )

    def _install(self, snapshot: ListsSnapshot) -> None:
        with self._lock:
            self._current = snapshot

    @property
    def current(self) -> ListsSnapshot | None:
        with self._lock:
            return self._current

    @property
    def etag(self) -> str | None:
        current = self.current
        return current.etag if current else None

    def replace(self, lists: EdgeLists, etag: str | None, *, now: float | None = None) -> None:
        """Store a new copy durably, then use it."""
        snapshot = ListsSnapshot(lists, etag, time.time() if now is None else now)
        stored = {"etag": etag, "fetched_at": snapshot.fetched_at}
        body = json.dumps(stored | {"lists": lists.model_dump(mode="json")})
        tmp = self.path.with_suffix(".json.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.directory)
        self._install(snapshot)

    def confirm(self, *, now: float | None = None) -> None:
        """Central said 304: the copy is current as of now (kept in memory only)."""
        with self._lock:
            if self._current is not None:
                self._current = ListsSnapshot(
                    self._current.lists,
                    self._current.etag,
                    time.time() if now is None else now,
                )

    def age_s(self, *, now: float | None = None) -> float | None:
        current = self.current
        if current is None:
            return None
        return max(0.0, (time.time() if now is None else now) - current.fetched_at)

    def decide(self, plate: str, at: datetime) -> ListDecision | None:
        """What the lists say about ``plate`` at ``at``; None when they say nothing."""
        current = self.current
        if current is None:
            return None
        lists = current.lists
        # Match keys on both sides, as central does: ``0AB1234`` is on a list holding ``OAB1234``.
        key = plate_match_key(plate)

        def listed(entries: list[ListedPlate]) -> bool:
            return any(
                plate_match_key(e.plate_normalized) == key
                and (e.expires_at is None or e.expires_at > at)
                for e in entries
            )

        if listed(lists.deny):
            return ListDecision(GateAction.DENY, GateReason.DENY_LISTED, OfflineBasis.DENY_LIST)
        if listed(lists.allow):
            return ListDecision(GateAction.OPEN, GateReason.ALLOW_LISTED, OfflineBasis.ALLOW_LIST)
        if any(
            plate_match_key(p.plate_normalized) == key and p.valid_from <= at < p.valid_until
            for p in lists.passes
        ):
            return ListDecision(GateAction.OPEN, GateReason.SUBSCRIBER, OfflineBasis.SUBSCRIPTION)
        return None

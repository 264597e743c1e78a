"""What an edge needs to decide without central (its lot's lists and passes, with an ETag),
and the decisions it took that way, reported afterwards."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.central.clock import as_utc
from app.central.core.events import PlateEvent
from app.central.core.identity import CameraIdentity
from app.central.edgesync.models import OfflineGateDecision
from app.central.errors import Forbidden
from app.central.lists.models import ListEntry, Subscription
from app.central.live.service import announce
from app.contract import EdgeLists, ListedPlate, OfflineDecision, PassEntry


def lists_for_camera(db: Session, *, camera: CameraIdentity, now: datetime) -> EdgeLists:
    """Allow/deny entries that apply to the camera's lot (lot-less ones apply to every lot)
    and the lot's passes, all still valid at ``now``, in a stable order."""
    entries = db.execute(
        select(ListEntry.kind, ListEntry.plate_normalized, ListEntry.expires_at)
        .where(
            or_(ListEntry.lot_id.is_(None), ListEntry.lot_id == camera.lot_id),
            or_(ListEntry.expires_at.is_(None), ListEntry.expires_at > now),
        )
        .order_by(ListEntry.kind, ListEntry.plate_normalized, ListEntry.id)
    ).all()
    passes = db.execute(
        select(Subscription.plate_normalized, Subscription.valid_from, Subscription.valid_until)
        .where(Subscription.lot_id == camera.lot_id, Subscription.valid_until > now)
        .order_by(Subscription.plate_normalized, Subscription.id)
    ).all()
    db.rollback()  # a read: give the connection back before the answer is serialized

    def listed(kind: str) -> list[ListedPlate]:
        return [
            ListedPlate(plate_normalized=plate, expires_at=as_utc(expires) if expires else None)
            for k, plate, expires in entries
            if k == kind
        ]

    return EdgeLists(
        lot_id=camera.lot_id,
        camera_id=camera.id,
        generated_at=now,
        allow=listed("allow"),
        deny=listed("deny"),
        passes=[
            PassEntry(plate_normalized=plate, valid_from=as_utc(start), valid_until=as_utc(end))
            for plate, start, end in passes
        ],
    )


def etag_of(lists: EdgeLists) -> str:
    """A strong validator over the content (not ``generated_at``): equal lists, equal tag."""
    body = lists.model_dump(mode="json", exclude={"generated_at"})
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    return f'"{digest}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@dataclass(frozen=True)
class Stored:
    fresh: list[OfflineDecision]
    known: int

    @property
    def stored(self) -> int:
        return len(self.fresh)


def store_offline_decisions(
    db: Session, *, camera: CameraIdentity, decisions: list[OfflineDecision], now: datetime
) -> Stored:
    """Insert the decisions not stored yet (by ``event_id``); announce each new one."""
    for decision in decisions:
        if decision.camera_id != camera.id:
            raise Forbidden("this key belongs to another camera")
    ids = [d.event_id for d in decisions]
    for attempt in (1, 2):
        known = set(
            db.scalars(
                select(OfflineGateDecision.event_id).where(OfflineGateDecision.event_id.in_(ids))
            )
        )
        fresh = {d.event_id: d for d in decisions if d.event_id not in known}
        for decision in fresh.values():
            db.add(
                OfflineGateDecision(
                    event_id=decision.event_id,
                    camera_id=camera.id,
                    lot_id=camera.lot_id,
                    plate=decision.plate,
                    decided_at=decision.decided_at,
                    reported_at=now,
                    action=decision.action.value,
                    reason=decision.reason.value,
                    basis=decision.basis.value,
                    flagged=decision.flagged,
                    lists_etag=decision.lists_etag,
                    lists_age_s=decision.lists_age_s,
                )
            )
        try:
            db.flush()
        except IntegrityError:
            # The same report raced in on another connection: look again, store the rest.
            db.rollback()
            if attempt == 2:
                raise
            continue
        for decision in fresh.values():
            announce(
                db,
                kind="offline_decision",
                data={
                    "camera_id": camera.id,
                    "event_id": str(decision.event_id),
                    "plate": decision.plate,
                    "action": decision.action.value,
                    "basis": decision.basis.value,
                    "flagged": decision.flagged,
                },
            )
        return Stored(fresh=list(fresh.values()), known=len(decisions) - len(fresh))
    raise AssertionError("unreachable")


def offline_summary(
    db: Session, *, camera_id: str | None = None, limit: int = 100
) -> dict[str, Any]:
    """Counts per camera and action, and the newest decisions with the session their event
    opened or closed (None while the event itself has not reached central)."""
    counts = select(
        OfflineGateDecision.camera_id, OfflineGateDecision.action, func.count()
    ).group_by(OfflineGateDecision.camera_id, OfflineGateDecision.action)
    items = (
        select(OfflineGateDecision, PlateEvent.session_id, PlateEvent.event_id.is_not(None))
        .outerjoin(PlateEvent, PlateEvent.event_id == OfflineGateDecision.event_id)
        .order_by(OfflineGateDecision.decided_at.desc())
        .limit(limit)
    )
    if camera_id is not None:
        counts = counts.where(OfflineGateDecision.camera_id == camera_id)
        items = items.where(OfflineGateDecision.camera_id == camera_id)
    by_camera: dict[str, dict[str, int]] = {}
    total = 0
    for cam, action, count in db.execute(counts):
        by_camera.setdefault(cam, {})[action] = count
        total += count
    rows = [
        {
            "event_id": row.event_id,
            "camera_id": row.camera_id,
            "plate": row.plate,
            "decided_at": as_utc(row.decided_at),
            "reported_at": as_utc(row.reported_at),
            "action": row.action,
            "reason": row.reason,
            "basis": row.basis,
            "flagged": row.flagged,
            "event_received": bool(received),
            "session_id": session_id,
        }
        for row, session_id, received in db.execute(items)
    ]
    return {"total": total, "by_camera": by_camera, "items": rows}

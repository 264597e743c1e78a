from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from functools import partial
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.central.deps import DB, CameraAuth, Guard, Offset, State
from app.central.errors import DomainError, NotFound
from app.central.events import service
from app.central.events.combiner import WriteCombiner
from app.central.events.schemas import EventOut
from app.central.metrics import EVENTS_INGESTED
from app.contract import EventAck, EventBatchAck, PlateEvent, PlateEventBatch

router = APIRouter(prefix="/events", tags=["events"])


def _policy(state: State) -> service.IngestPolicy:
    return service.IngestPolicy(
        low_confidence=state.settings.low_confidence,
        timezone=state.settings.timezone,
        max_event_age=timedelta(days=state.settings.event_max_age_days),
    )


_ACCEPTED = EVENTS_INGESTED.labels(result="accepted")
_DUPLICATE = EVENTS_INGESTED.labels(result="duplicate")


# One line per event central answered: its id, its camera, what became of it. A logger of its
# own, so it can be told apart (and turned down) without touching the others.
ingest_log = logging.getLogger("app.central.events.ingest")


def log_ingested(
    events: Iterable[PlateEvent], results: Iterable[service.Ingested], via: str
) -> None:
    """``stored`` or ``replayed`` (a retry: the stored answer, unchanged), with the gate's
    action. Nothing is built unless INFO is on."""
    if not ingest_log.isEnabledFor(logging.INFO):
        return
    for event, result in zip(events, results, strict=False):
        outcome = "replayed" if result.replay else "stored"
        decision = result.ack.get("decision") or {}
        ingest_log.info(
            "event %s of %s %s",
            event.event_id,
            event.camera_id,
            outcome,
            extra={
                "event_id": str(event.event_id),
                "camera_id": event.camera_id,
                "outcome": outcome,
                "action": decision.get("action"),
                "reason": decision.get("reason"),
                "via": via,
            },
        )


def log_not_ingested(events: Iterable[PlateEvent], error: Exception, via: str) -> None:
    """``refused`` (the event's own fault: 409, 422, ...) or ``failed`` (central's: the
    database), for each event of the request: a batch is stored all or nothing."""
    if not ingest_log.isEnabledFor(logging.INFO):
        return
    refused = isinstance(error, DomainError)
    outcome = "refused" if refused else "failed"
    reason = error.message if isinstance(error, DomainError) else type(error).__name__
    status = error.status_code if isinstance(error, DomainError) else None
    for event in events:
        ingest_log.info(
            "event %s of %s %s: %s",
            event.event_id,
            event.camera_id,
            outcome,
            reason,
            extra={
                "event_id": str(event.event_id),
                "camera_id": event.camera_id,
                "outcome": outcome,
                "reason": reason,
                "status": status,
                "via": via,
            },
        )


def _combiner(request: Request) -> WriteCombiner:
    combiner: WriteCombiner = request.app.state.ingest
    return combiner


@router.post("", response_model=EventAck)
async def ingest_event(
    event: PlateEvent, camera: CameraAuth, db: DB, request: Request
) -> JSONResponse:
    """Async: the event joins the next group commit (``combiner.py``) without a worker thread
    of its own."""
    try:
        service.require_owner(camera, [event])
        result = await _combiner(request).submit(db, camera, event)
    except Exception as error:
        log_not_ingested((event,), error, "route")
        raise
    (_DUPLICATE if result.replay else _ACCEPTED).inc()
    log_ingested((event,), (result,), "route")
    headers = {"X-Idempotent-Replay": "true"} if result.replay else None
    return JSONResponse(result.ack, headers=headers)


@router.post("/batch", response_model=EventBatchAck)
async def ingest_batch(
    batch: PlateEventBatch, camera: CameraAuth, db: DB, state: State
) -> JSONResponse:
    try:
        service.require_owner(camera, batch.events)
        results = await run_in_threadpool(
            partial(
                service.ingest_batch, db, camera=camera, events=batch.events, policy=_policy(state)
            )
        )
    except Exception as error:
        log_not_ingested(batch.events, error, "batch")
        raise
    for result in results:
        (_DUPLICATE if result.replay else _ACCEPTED).inc()
    log_ingested(batch.events, results, "batch")
    return JSONResponse({"acks": [r.ack for r in results]})


@router.get("", response_model=list[EventOut])
def list_events(
    db: DB,
    _: Guard,
    camera_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[EventOut]:
    rows = service.list_events(db, camera_id=camera_id, limit=limit, offset=offset)
    return [EventOut.model_validate(row) for row in rows]


@router.get("/{event_id}/snapshot", responses={200: {"content": {"image/jpeg": {}}}})
def snapshot(event_id: UUID, db: DB, _: Guard) -> Response:
    jpeg = service.get_snapshot(db, event_id=event_id)
    if jpeg is None:
        raise NotFound("no snapshot for this event (never sent, or past retention)")
    return Response(
        jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )

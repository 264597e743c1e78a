from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.central.deps import DB, CameraAuth, Guard, Offset, State
from app.central.errors import Conflict, NotFound
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


def _combiner(request: Request) -> WriteCombiner:
    combiner: WriteCombiner = request.app.state.ingest
    return combiner


@router.post("", response_model=EventAck)
async def ingest_event(
    event: PlateEvent, camera: CameraAuth, db: DB, request: Request
) -> JSONResponse:
    """Async: the event joins the next group commit (``combiner.py``) without a worker thread
    of its own."""
    if event.camera_id != camera.id:
        raise Conflict("camera_id does not match the API key's camera", field="camera_id")
    result = await _combiner(request).submit(db, camera, event)
    (_DUPLICATE if result.replay else _ACCEPTED).inc()
    headers = {"X-Idempotent-Replay": "true"} if result.replay else None
    return JSONResponse(result.ack, headers=headers)


@router.post("/batch", response_model=EventBatchAck)
async def ingest_batch(
    batch: PlateEventBatch, camera: CameraAuth, db: DB, state: State
) -> JSONResponse:
    results = await run_in_threadpool(
        partial(service.ingest_batch, db, camera=camera, events=batch.events, policy=_policy(state))
    )
    for result in results:
        (_DUPLICATE if result.replay else _ACCEPTED).inc()
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

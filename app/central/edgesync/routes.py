"""The edge's side door: its lists for offline decisions (ETag, 304) and its report of them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from app.central.clock import utcnow
from app.central.deps import DB, CameraAuth, Guard
from app.central.edgesync import service
from app.central.metrics import REGISTRY
from app.contract import OfflineDecisionAck, OfflineDecisionReport

router = APIRouter(prefix="/edge", tags=["edge"])

OFFLINE_DECISIONS = Counter(
    "parking_offline_decisions_reported_total",
    "Gate decisions edges took without central, by action and basis (new reports only)",
    ["action", "basis"],
    registry=REGISTRY,
)


@router.get("/lists", responses={304: {"description": "the edge's copy is current"}})
def edge_lists(
    camera: CameraAuth,
    db: DB,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    lists = service.lists_for_camera(db, camera=camera, now=utcnow())
    etag = service.etag_of(lists)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if service.etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return JSONResponse(lists.model_dump(mode="json"), headers=headers)


@router.post("/offline-decisions", response_model=OfflineDecisionAck)
def report_offline_decisions(
    body: OfflineDecisionReport, camera: CameraAuth, db: DB
) -> OfflineDecisionAck:
    result = service.store_offline_decisions(
        db, camera=camera, decisions=body.decisions, now=utcnow()
    )
    db.commit()
    for decision in result.fresh:
        OFFLINE_DECISIONS.labels(decision.action.value, decision.basis.value).inc()
    return OfflineDecisionAck(stored=result.stored, known=result.known)


@router.get("/offline-decisions")
def offline_decisions(
    db: DB,
    _: Guard,
    camera_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return service.offline_summary(db, camera_id=camera_id, limit=limit)

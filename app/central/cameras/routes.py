from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.central.cameras import service
from app.central.cameras.schemas import CameraCreate, CameraCreated, CameraOut
from app.central.clock import utcnow
from app.central.deps import DB, Admin, CameraAuth, Guard, State
from app.central.errors import Forbidden
from app.contract import CameraHeartbeat

router = APIRouter(prefix="/cameras", tags=["cameras"])


@router.get("", response_model=list[CameraOut])
def list_cameras(db: DB, _: Guard, state: State) -> list[CameraOut]:
    views = service.camera_views(
        db, now=utcnow(), offline_after_s=state.settings.camera_offline_after_s
    )
    return [CameraOut.model_validate(v) for v in views]


@router.post("", response_model=CameraCreated, status_code=status.HTTP_201_CREATED)
def create_camera(body: CameraCreate, db: DB, who: Admin) -> CameraCreated:
    camera, api_key = service.create_camera(
        db,
        camera_id=body.id,
        lot_id=body.lot_id,
        direction=body.direction.value,
        name=body.name,
        actor=who.username,
    )
    return CameraCreated(id=camera.id, api_key=api_key)


@router.post("/{camera_id}/rotate-key", response_model=CameraCreated)
def rotate_key(camera_id: str, db: DB, who: Admin, state: State) -> CameraCreated:
    api_key = service.rotate_key(db, camera_id=camera_id, actor=who.username)  # committed
    state.camera_keys.forget(camera_id)
    return CameraCreated(id=camera_id, api_key=api_key)


@router.post("/{camera_id}/heartbeat", status_code=status.HTTP_204_NO_CONTENT)
def heartbeat(camera_id: str, body: CameraHeartbeat, camera: CameraAuth, db: DB) -> Response:
    if camera.id != camera_id:
        raise Forbidden("this key belongs to another camera")
    service.record_heartbeat(db, camera_id=camera.id, heartbeat=body, now=utcnow())
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

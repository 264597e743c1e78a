"""Wire contract between the edge agents and central, defined once and imported by both.

Pydantic models only, no I/O. The version is part of every URL (``/api/v1``); a breaking
change gets a new module (``v2``) while central keeps serving the old one.
"""

from app.contract.v1 import (
    API_PREFIX,
    MAX_BATCH_EVENTS,
    MAX_OFFLINE_DECISIONS,
    MAX_SNAPSHOT_BYTES,
    CameraDirection,
    CameraHeartbeat,
    EdgeLists,
    EventAck,
    EventBatchAck,
    GateAction,
    GateDecision,
    GateReason,
    ListedPlate,
    OfflineBasis,
    OfflineDecision,
    OfflineDecisionAck,
    OfflineDecisionReport,
    PassEntry,
    PlateCandidate,
    PlateEvent,
    PlateEventBatch,
    VehicleType,
    normalize_plate,
)

__all__ = [
    "API_PREFIX",
    "MAX_BATCH_EVENTS",
    "MAX_OFFLINE_DECISIONS",
    "MAX_SNAPSHOT_BYTES",
    "CameraDirection",
    "CameraHeartbeat",
    "EdgeLists",
    "EventAck",
    "EventBatchAck",
    "GateAction",
    "GateDecision",
    "GateReason",
    "ListedPlate",
    "OfflineBasis",
    "OfflineDecision",
    "OfflineDecisionAck",
    "OfflineDecisionReport",
    "PassEntry",
    "PlateCandidate",
    "PlateEvent",
    "PlateEventBatch",
    "VehicleType",
    "normalize_plate",
]

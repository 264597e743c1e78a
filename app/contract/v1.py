"""Version 1 of the edge <-> central wire contract.

* ``PlateEvent``  edge -> central, ``POST /api/v1/events`` (header ``X-API-Key``).
* ``EventAck``    central -> edge, the answer: stored, and replayed byte-for-byte when the same
                  ``event_id`` arrives again, so a retry can never have a second effect.
* ``CameraHeartbeat`` edge -> central, ``POST /api/v1/cameras/{camera_id}/heartbeat``.
* ``LaneCommands``  central -> edge, the answer to the lane's long poll
                  ``GET /api/v1/lanes/{camera_id}/commands?wait_s=N``; ``CommandAck`` edge ->
                  central, ``POST /api/v1/lanes/{camera_id}/commands/{command_id}/ack``.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

API_PREFIX = "/api/v1"
MAX_SNAPSHOT_BYTES = 512 * 1024
# Edge clocks are NTP-synced; more than this ahead of central's clock is a broken clock.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# No event was captured before this: a lane that booted without network time (a Raspberry Pi
# has no real-time clock) stamps 1970, and its events must be refused, not charged for 56 years.
EARLIEST_CAPTURE = datetime(2024, 1, 1, tzinfo=UTC)

# Display forms as the reader prints them: letters, digits and the separators used on
# Vietnamese (``51F-123.45``, ``59-X1 123.45``) and generic plates. Đ is written D.
_PLATE_DISPLAY = re.compile(r"^[A-Z0-9][A-Z0-9 .\-/]{0,14}[A-Z0-9]$")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")
# Camera and lot ids: lower-case letters, digits, '_' and '-', 1-63 characters.
ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,62}$"
_CAMERA_ID = ID_PATTERN


def _in_utc(value: datetime) -> datetime:
    """Aware, and representable in UTC (``9999-12-31T23:00-05:00`` is not: no year 10000)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a timezone offset")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the calendar") from None


# A timestamp an edge reports about itself (heartbeat, outcome): aware and in range, but any
# year, so that a lane whose clock is wrong can still say so.
Moment = Annotated[datetime, AfterValidator(_in_utc)]
# Operators' dates (list expiry, passes) are between these.
EARLIEST_DATE = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_DATE = datetime(2200, 1, 1, tzinfo=UTC)


def _plausible(value: datetime) -> datetime:
    value = _in_utc(value)
    if not EARLIEST_DATE <= value < LATEST_DATE:
        raise ValueError(f"must be between {EARLIEST_DATE.year} and {LATEST_DATE.year}")
    return value


PlausibleTime = Annotated[datetime, AfterValidator(_plausible)]


def normalize_plate(plate: str) -> str:
    """Form used for matching: letters and digits only (``51F-123.45`` -> ``51F12345``)."""
    return _NOT_ALNUM.sub("", plate.upper().replace("Đ", "D"))


# Characters a plate reader (or a person) confuses, and the digit each group is keyed as.
PLATE_LOOKALIKES: dict[str, str] = {
    "O": "0", "D": "0", "Q": "0", "I": "1", "B": "8", "S": "5", "Z": "2", "G": "6",
}  # fmt: skip
_MATCH_KEY = str.maketrans(PLATE_LOOKALIKES)


def plate_match_key(plate: str) -> str:
    """The form plates are *matched* on, never stored or shown: the normalized plate with every
    look-alike written as its digit (O/D/Q -> 0, I -> 1, B -> 8, S -> 5, Z -> 2, G -> 6), so
    ``OAB-1234`` and ``0AB1234`` match. Edge and central both compare plates with it."""
    return normalize_plate(plate).translate(_MATCH_KEY)


class VehicleType(StrEnum):
    CAR = "car"
    MOTORBIKE = "motorbike"
    TRUCK = "truck"
    BUS = "bus"
    UNKNOWN = "unknown"


class CameraDirection(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


class GateAction(StrEnum):
    OPEN = "open"
    DENY = "deny"
    # The vehicle is known and may leave once its fee is paid: the barrier stays closed and a
    # cashier's payment opens it through the lane's command channel.
    HOLD = "hold"


class GateReason(StrEnum):
    ENTRY_ALLOWED = "entry_allowed"
    SUBSCRIBER = "subscriber"
    ALLOW_LISTED = "allow_listed"
    EXIT_PAID = "exit_paid"
    EXIT_FREE = "exit_free"
    EXIT_PREPAID = "exit_prepaid"
    PAYMENT_REQUIRED = "payment_required"
    LOT_FULL = "lot_full"
    DENY_LISTED = "deny_listed"
    NO_ENTRY_RECORD = "no_entry_record"
    ALREADY_INSIDE = "already_inside"
    MANUAL = "manual"
    OFFLINE_POLICY = "offline_policy"


def _check_plate(value: str) -> str:
    value = value.strip().upper().replace("Đ", "D")
    if not _PLATE_DISPLAY.match(value):
        raise ValueError(
            "plate must be 2-16 characters of A-Z, 0-9 and the separators ' .-/', "
            "starting and ending with a letter or digit"
        )
    if not 2 <= len(normalize_plate(value)) <= 12:
        raise ValueError("plate must hold 2-12 letters and digits")
    return value


class PlateCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: str
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]

    @field_validator("plate")
    @classmethod
    def _plate_charset(cls, value: str) -> str:
        return _check_plate(value)


class PlateEvent(BaseModel):
    """One vehicle seen at one lane: several agreeing reads aggregated on the edge."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID = Field(description="UUIDv7 made at capture; the idempotency key")
    camera_id: Annotated[str, Field(pattern=_CAMERA_ID)]
    captured_at: datetime = Field(description="timezone-aware capture time")
    plate: str = Field(description="display form, e.g. 51F-123.45")
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    vehicle_type: VehicleType = VehicleType.UNKNOWN
    candidates: Annotated[list[PlateCandidate], Field(max_length=10)] = []
    snapshot_b64: str | None = Field(
        default=None, description=f"base64 JPEG, at most {MAX_SNAPSHOT_BYTES} bytes decoded"
    )

    @field_validator("plate")
    @classmethod
    def _plate_charset(cls, value: str) -> str:
        return _check_plate(value)

    @field_validator("captured_at")
    @classmethod
    def _aware_and_not_future(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("captured_at must carry a timezone offset")
        value = _in_utc(value)
        if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("captured_at is more than 5 minutes in the future")
        if value < EARLIEST_CAPTURE:
            raise ValueError(
                f"captured_at is before {EARLIEST_CAPTURE.date()}: the lane's clock is not set"
            )
        return value

    @field_validator("snapshot_b64")
    @classmethod
    def _jpeg(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > (MAX_SNAPSHOT_BYTES * 4) // 3 + 4:
            raise ValueError(f"snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("snapshot_b64 is not valid base64") from None
        if len(raw) > MAX_SNAPSHOT_BYTES:
            raise ValueError(f"snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
        if not (raw.startswith(b"\xff\xd8\xff") and raw.rstrip(b"\x00").endswith(b"\xff\xd9")):
            raise ValueError("snapshot is not a JPEG image")
        return value

    def snapshot_bytes(self) -> bytes | None:
        return base64.b64decode(self.snapshot_b64) if self.snapshot_b64 else None

    @property
    def plate_normalized(self) -> str:
        return normalize_plate(self.plate)


class GateDecision(BaseModel):
    action: GateAction
    reason: GateReason
    message: str = ""
    fee: int = Field(default=0, description="amount due at exit, in the lot's currency unit")


class EventAck(BaseModel):
    """Central's answer to a ``PlateEvent``; identical for every retry of the same event_id."""

    event_id: UUID
    accepted_at: datetime
    session_id: int | None
    decision: GateDecision
    anomaly: str | None = None


class CameraHeartbeat(BaseModel):
    """Health figures the edge reports every ``heartbeat_interval`` seconds."""

    model_config = ConfigDict(extra="forbid")

    sent_at: Moment
    agent_version: Annotated[str, Field(max_length=40)] = "unknown"
    uptime_s: Annotated[float, Field(ge=0)] = 0.0
    fps: Annotated[float, Field(ge=0)] = 0.0
    inference_ms: Annotated[float, Field(ge=0)] | None = None
    outbox_depth: Annotated[int, Field(ge=0)] = 0
    outbox_oldest_age_s: Annotated[float, Field(ge=0)] = 0.0
    outbox_bytes: Annotated[int, Field(ge=0)] = 0
    dead_letters: Annotated[int, Field(ge=0)] = 0
    captured_total: Annotated[int, Field(ge=0)] = 0
    delivered_total: Annotated[int, Field(ge=0)] = 0
    reads_rejected_total: Annotated[int, Field(ge=0)] = 0
    disk_free_bytes: Annotated[int, Field(ge=0)] | None = None
    cpu_temp_c: float | None = None
    last_error: Annotated[str, Field(max_length=500)] | None = None

    @model_validator(mode="after")
    def _delivered_le_captured(self) -> CameraHeartbeat:
        if self.delivered_total > self.captured_total:
            raise ValueError("delivered_total cannot exceed captured_total")
        return self


MAX_BATCH_EVENTS = 100


class PlateEventBatch(BaseModel):
    """``POST /api/v1/events/batch``: a backlog drained in capture order, one commit."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[PlateEvent], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


class EventBatchAck(BaseModel):
    acks: list[EventAck]


# -- offline gate decisions (additive to v1) ---------------------------------------------------
#
# ``GET /api/v1/edge/lists`` (camera key; ``If-None-Match`` -> 304): the allow/deny lists and the
# passes of the camera's lot, kept on the edge's disk. When central does not answer within the
# gate deadline the edge decides from that copy and reports each such decision afterwards with
# ``POST /api/v1/edge/offline-decisions`` (idempotent by ``event_id``).


class ListedPlate(BaseModel):
    """One allow- or deny-listed plate; ``expires_at`` None: until removed."""

    plate_normalized: Annotated[str, Field(min_length=1, max_length=16)]
    expires_at: datetime | None = None


class PassEntry(BaseModel):
    """A subscription (monthly pass) of the lot."""

    plate_normalized: Annotated[str, Field(min_length=1, max_length=16)]
    valid_from: datetime
    valid_until: datetime


class EdgeLists(BaseModel):
    """What a camera's edge needs to decide at the gate without central."""

    lot_id: str
    camera_id: str
    generated_at: datetime
    allow: list[ListedPlate] = []
    deny: list[ListedPlate] = []
    passes: list[PassEntry] = []


class OfflineBasis(StrEnum):
    DENY_LIST = "deny_list"
    ALLOW_LIST = "allow_list"
    SUBSCRIPTION = "subscription"
    POLICY = "policy"  # the plate was on no list: the configured offline policy


class OfflineDecision(BaseModel):
    """A gate action the edge took on its own because central did not answer in time."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    camera_id: Annotated[str, Field(pattern=_CAMERA_ID)]
    plate: Annotated[str, Field(max_length=20)]
    decided_at: Moment
    action: GateAction
    reason: GateReason
    basis: OfflineBasis
    flagged: bool = False
    lists_etag: Annotated[str, Field(max_length=80)] | None = None
    lists_age_s: Annotated[float, Field(ge=0)] | None = None


MAX_OFFLINE_DECISIONS = 500


class OfflineDecisionReport(BaseModel):
    """``POST /api/v1/edge/offline-decisions``: decisions of the calling camera, oldest first."""

    model_config = ConfigDict(extra="forbid")

    decisions: Annotated[
        list[OfflineDecision], Field(min_length=1, max_length=MAX_OFFLINE_DECISIONS)
    ]


class OfflineDecisionAck(BaseModel):
    stored: int  # new rows
    known: int  # already reported before (a retry)


# -- lane commands (additive to v1) ------------------------------------------------------------
#
# The edge never listens for inbound connections: each lane's agent holds a long poll open to
# central through the VIP (``GET /api/v1/lanes/{camera_id}/commands?wait_s=N``, camera key).
# Central answers as soon as a command for the lane is committed (or with an empty list after
# ``wait_s``). A command carries ``ttl_ms``, the time it has left when central answers, which the
# edge counts on its own monotonic clock: a lane whose wall clock is wrong still never acts late.
# The edge keeps every command id it has seen on disk and executes each at most once; it
# answers with ``POST .../commands/{command_id}/ack`` (idempotent by command id).

MAX_COMMAND_WAIT_S = 30
MAX_COMMAND_TTL_S = 60


class LaneCommandKind(StrEnum):
    OPEN = "open"  # pulse the barrier relay once


class LaneCommand(BaseModel):
    command_id: UUID
    camera_id: str
    kind: LaneCommandKind = LaneCommandKind.OPEN
    issued_at: datetime
    expires_at: datetime
    ttl_ms: Annotated[int, Field(ge=0, description="time left when central answered")]
    operator: str = ""
    reason: str = ""


class LaneCommands(BaseModel):
    commands: list[LaneCommand] = []


class CommandOutcome(StrEnum):
    PULSED = "pulsed"  # the relay pulsed
    EXPIRED = "expired"  # it arrived too late; nothing moved
    FAILED = "failed"  # the relay failed, or the agent could not tell (see detail)


class CommandAck(BaseModel):
    """What the lane did with one command; the first ack of a command id is the one kept."""

    model_config = ConfigDict(extra="forbid")

    outcome: CommandOutcome
    at: Moment = Field(description="the edge's time of the outcome")
    detail: Annotated[str, Field(max_length=300)] = ""

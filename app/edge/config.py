"""The agent's one configuration file (TOML), read and checked in one place.

An invalid file stops the agent with a message that names the key, e.g.
``config /etc/parking-edge/edge.toml: gate.deadline_s: Input should be greater than 0``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from app.contract import MAX_COMMAND_WAIT_S, CameraDirection
from app.edge.clock import ClockRequirement
from app.edge.reader import Detector
from app.edge.reader.profiles import region_names

_CAMERA_ID = r"^[a-z0-9][a-z0-9_\-]{0,62}$"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    # Every key carries its description and every section its docstring:
    # tools/edge_config_reference.py writes docs/edge-config.md from them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Section):
    """The lane's camera as central knows it. Give exactly one of `api_key` and `api_key_file`;
    the environment variable `PARKING_EDGE_API_KEY`, when set, wins over both."""

    id: Annotated[
        str,
        Field(
            pattern=_CAMERA_ID,
            description="Central's camera id of this lane (one agent per camera).",
            examples=["gate-1-in"],
        ),
    ]
    direction: Annotated[
        CameraDirection,
        Field(
            description="The lane's direction: vehicles enter or leave here.", examples=["entry"]
        ),
    ]
    lot: Annotated[
        str | None,
        Field(description="The lot the lane belongs to; only tags error reports (Sentry)."),
    ] = None
    api_key: Annotated[
        str | None, Field(description="The camera's API key, written in the config file itself.")
    ] = None
    api_key_file: Annotated[
        Path | None,
        Field(
            description="A file holding the camera's API key (the Ansible role writes one).",
            examples=["/etc/parking-edge/api-key"],
        ),
    ] = None

    @model_validator(mode="after")
    def _one_key(self) -> CameraConfig:
        if (self.api_key is None) == (self.api_key_file is None):
            raise ValueError("give exactly one of api_key and api_key_file")
        return self

    def resolved_api_key(self) -> str:
        if self.api_key is not None:
            return self.api_key
        assert self.api_key_file is not None
        try:
            return self.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"camera.api_key_file: cannot read {self.api_key_file}: {exc}"
            ) from exc


class CentralConfig(_Section):
    """Where central answers: the VIP in front of the central nodes (docs/edge.md, "Talking to
    central")."""

    url: Annotated[
        str,
        Field(
            pattern=r"^https?://",
            description="Base URL of the VIP in front of central (HTTPS in production).",
            examples=["https://vip.parking.lan"],
        ),
    ]
    connect_timeout_s: Annotated[
        float,
        Field(gt=0, le=30, description="Seconds to wait for a connection to the VIP."),
    ] = 2.0
    read_timeout_s: Annotated[
        float,
        Field(gt=0, le=300, description="Seconds to wait for central's answer to a request."),
    ] = 10.0
    vip_move_budget_s: Annotated[
        float,
        Field(
            ge=0,
            le=60,
            description="Seconds one call keeps trying on fresh connections while the VIP"
            " moves to another load balancer (0: never).",
        ),
    ] = 6.0
    ca_file: Annotated[
        Path | None,
        Field(description="CA certificate of the VIP's certificate; unset: the OS trust store."),
    ] = None
    verify_tls: Annotated[
        bool,
        Field(description="Check the VIP's certificate (false only for a throwaway test setup)."),
    ] = True


class SourceKind(StrEnum):
    FOLDER = "folder"
    OPENCV = "opencv"
    PICAMERA2 = "picamera2"


class SourceConfig(_Section):
    """Where the frames come from: the Pi's camera (`picamera2`), anything OpenCV opens
    (`opencv`), or a folder of pictures replayed as a camera would see them (`folder`: the
    demo, tests, benches; a `NAME.txt` beside `NAME.jpg` is the ground truth the `sidecar`
    reader answers)."""

    kind: Annotated[SourceKind, Field(description="The frame source.", examples=["picamera2"])]
    path: Annotated[
        Path | None, Field(description="`folder`: the folder of pictures (required there).")
    ] = None
    uri: Annotated[
        str | None,
        Field(
            description='`opencv`: a file, an `rtsp://...` URL or a USB index such as "0"'
            " (required there)."
        ),
    ] = None
    fps: Annotated[
        float,
        Field(
            ge=0,
            le=120,
            description="Frames per second: the capture rate of `picamera2` (0: 10), the replay"
            " pace of `folder` (0: as fast as the reader takes them).",
        ),
    ] = 5.0
    loop: Annotated[
        bool,
        Field(description="`folder`: start again after the last picture (listing it anew)."),
    ] = False
    frames_per_image: Annotated[
        int,
        Field(
            ge=1,
            le=100,
            description="`folder`: frames each picture is shown (a car standing at the gate).",
        ),
    ] = 3
    gap_frames: Annotated[
        int,
        Field(
            ge=0,
            le=100,
            description="`folder`: empty frames after each picture (the car has left).",
        ),
    ] = 1
    limit: Annotated[
        Annotated[int, Field(ge=1)] | None,
        Field(description="`folder`: replay only the first N pictures (in name order)."),
    ] = None
    width: Annotated[
        int, Field(ge=64, le=8192, description="`picamera2`: capture width in pixels.")
    ] = 1920
    height: Annotated[
        int, Field(ge=64, le=8192, description="`picamera2`: capture height in pixels.")
    ] = 1080

    @model_validator(mode="after")
    def _target(self) -> SourceConfig:
        if self.kind is SourceKind.FOLDER and self.path is None:
            raise ValueError("kind 'folder' needs path")
        if self.kind is SourceKind.OPENCV and not self.uri:
            raise ValueError("kind 'opencv' needs uri")
        return self


class ReaderConfig(_Section):
    """The plate reader (docs/reader.md): the TFLite reader (`litert`), or `sidecar`, a
    test stand-in that replays the ground truth written next to replayed pictures and never
    looks at pixels. `grammars` (deprecated) is read as `regions`; give one of the two."""

    kind: Annotated[
        Literal["sidecar", "litert"],
        Field(description="`litert`: the TFLite plate reader; `sidecar`: the test stand-in."),
    ] = "sidecar"
    confidence: Annotated[
        float, Field(ge=0, le=1, description="`sidecar`: the confidence of every read.")
    ] = 0.9
    threads: Annotated[
        int, Field(ge=1, le=16, description="TFLite interpreter threads (a Pi 5 has 4 cores).")
    ] = 1
    models_dir: Annotated[
        Path | None,
        Field(description="The models; unset: those shipped in the wheel (app/edge/models)."),
    ] = None
    regions: Annotated[
        list[str],
        Field(
            min_length=1,
            description="Region profiles in order of preference, each at most once"
            " (app/edge/reader/plate_regions): `vn` (Vietnamese formats only: anything else is"
            " rejected), `us`, `br`, `eu` (fixed letter/digit slots are corrected in; other reads"
            " come back as read), `generic` (4-8 letters and digits as read, no layout, no"
            " correction).",
        ),
    ] = ["vn", "generic"]
    generic_patterns: Annotated[
        list[str],
        Field(
            min_length=1,
            description="`generic` only: what it takes as a plate (regular expressions over"
            " letters and digits).",
        ),
    ] = ["[A-Z0-9]{4,8}"]
    grammars: Annotated[
        Annotated[list[Literal["vn", "generic"]], Field(min_length=1)] | None,
        Field(description="Deprecated: the former name of `regions`."),
    ] = None
    generic_templates: Annotated[
        list[Annotated[str, Field(pattern=r"^[9AL*][9AL* .\-/]*$")]],
        Field(
            description='Deprecated: layouts for the `generic` profile ("9LLL999": 9 a digit, L'
            ' a letter, A either); use `regions = ["us"]`.'
        ),
    ] = []
    generic_fold: Annotated[
        str,
        Field(
            pattern=r"^([A-Z0-9][A-Z0-9])*$",
            description='Deprecated: pairs read as one glyph by the `generic` profile ("O0").',
        ),
    ] = ""
    max_plates: Annotated[
        int, Field(ge=1, le=10, description="Plates reported per frame at most.")
    ] = 1
    detector: Annotated[
        Detector,
        Field(
            description="Full-frame text detector: `fast` (448x800), `fine` (544x960: more of the"
            " small plates in wide scenes, at ~1.3x the time per frame and ~+45 MB) or `cascade`"
            " (the fast one, then the fine one only when the fast one found no plate it can trust:"
            " both in memory, ~+120 MB; since `fast` is 448x800 it reads less than `fine`)."
        ),
    ] = "fast"
    zoom_tiles: Annotated[
        int,
        Field(
            ge=0,
            le=4,
            description="A second, zoomed look for frames where no plate was found (small"
            " plates: a motorbike's across the street): the full-frame detector over an N x N grid"
            " of overlapping tiles, each upscaled to its input. 0 = off (docs/reader.md has the"
            " cost), 2..4 tiles a side.",
        ),
    ] = 0
    # -- plate-specific models (optional; docs/reader.md "Plate-specific models") --------------
    plate_models: Annotated[
        Path | None,
        Field(
            description="A folder holding the third-party plate detector and recognisers"
            " (`parking-edge models install hyperlpr3 fast-plate-ocr-global --dir DIR`): read"
            ' with them, the TFLite reader beside them. Needs `kind = "litert"` and the'
            " `plate-models` extra (onnxruntime)."
        ),
    ] = None

    @model_validator(mode="after")
    def _plate_models(self) -> ReaderConfig:
        if self.plate_models is None:
            return self
        from app.edge.reader.plate_models import missing_files

        if self.kind != "litert":
            raise ValueError('plate_models: needs kind = "litert"')
        if not self.plate_models.is_dir():
            raise ValueError(f"plate_models: {self.plate_models} is not a folder")
        missing = missing_files(self.plate_models)
        if missing:
            raise ValueError(
                f"plate_models: {self.plate_models} lacks {', '.join(missing)} "
                "(parking-edge models install hyperlpr3 fast-plate-ocr-global --dir "
                f"{self.plate_models})"
            )
        return self

    # -- end of plate-specific models -----------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _grammars_are_regions(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("grammars") is not None:
            if data.get("regions") not in (None, data["grammars"]):
                raise ValueError("set regions, not both regions and grammars (deprecated)")
            data = {**data, "regions": data["grammars"]}
        return data

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, value: list[str]) -> list[str]:
        known = region_names()
        unknown = [r for r in value if r not in known]
        if unknown:
            raise ValueError(f"unknown region {unknown[0]!r}: one of {', '.join(known)}")
        if len(set(value)) != len(value):
            raise ValueError("each region at most once")
        return value

    @field_validator("zoom_tiles")
    @classmethod
    def _zoom_grid(cls, value: int) -> int:
        if value == 1:
            raise ValueError("zoom_tiles: 0 (off) or 2 to 4 tiles a side (1 is the frame itself)")
        return value

    @model_validator(mode="after")
    def _patterns(self) -> ReaderConfig:
        for pattern in self.generic_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"generic_patterns: {pattern!r} is not a regex: {exc}") from None
        return self


class AggregateConfig(_Section):
    """From reads to one event per vehicle: `min_agreeing` identical reads within `window_s`,
    else the best-supported read once the vehicle has been unseen for `leave_after_s`; reads
    one character apart join the same vehicle."""

    min_agreeing: Annotated[
        int, Field(ge=1, le=50, description="Identical reads that make an event at once ...")
    ] = 3
    window_s: Annotated[float, Field(gt=0, le=60, description="... within this many seconds.")] = (
        2.0
    )
    leave_after_s: Annotated[
        float, Field(gt=0, le=60, description="Seconds unseen after which the vehicle has left.")
    ] = 1.5
    cooldown_s: Annotated[
        float,
        Field(ge=0, le=3600, description="Seconds before the same plate is reported again."),
    ] = 30.0
    min_confidence: Annotated[
        float, Field(ge=0, le=1, description="Reads below this confidence are ignored.")
    ] = 0.5
    min_support_on_leave: Annotated[
        int,
        Field(
            ge=1, le=50, description="Reads the best plate of a vehicle that left needs to count."
        ),
    ] = 1


class OutboxConfig(_Section):
    """The durable queue of events (SQLite, fsynced) and their snapshots, before central has
    acknowledged them (docs/edge.md, "The outbox")."""

    dir: Annotated[
        Path,
        Field(description="The agent's data directory: outbox, command journal, lists copy."),
    ] = Path("/var/lib/parking-edge")
    max_bytes: Annotated[
        int,
        Field(
            ge=1 << 20,
            description="Bound of rows + snapshots in bytes; the oldest snapshots go first,"
            " then new events are refused (and counted).",
        ),
    ] = 1 << 30
    max_permanent_attempts: Annotated[
        int,
        Field(
            ge=1,
            le=100,
            description="Tries of an event central refuses (422 etc.) before it is dead-lettered.",
        ),
    ] = 3
    snapshot_max_side: Annotated[
        int,
        Field(ge=160, le=4096, description="Longest side in pixels of the snapshot kept."),
    ] = 1280
    snapshot_quality: Annotated[
        int, Field(ge=30, le=100, description="JPEG quality of the snapshots.")
    ] = 85


class UploaderConfig(_Section):
    """Delivery to central: batches of the backlog, full-jitter backoff and a circuit breaker."""

    batch_max_events: Annotated[
        int, Field(ge=1, le=100, description="Events per `POST /events/batch` at most.")
    ] = 100
    batch_max_bytes: Annotated[
        int,
        Field(
            ge=64 << 10,
            description="Bytes per batch at most; central refuses bodies over 1 MiB by default.",
        ),
    ] = 900_000
    backoff_base_s: Annotated[
        float, Field(gt=0, le=60, description="First pause after a failure (full jitter).")
    ] = 0.5
    backoff_cap_s: Annotated[
        float, Field(gt=0, le=3600, description="Longest pause between tries.")
    ] = 30.0
    breaker_failures: Annotated[
        int,
        Field(ge=1, le=1000, description="Failures in a row that open the circuit breaker."),
    ] = 5
    breaker_reset_s: Annotated[
        float,
        Field(gt=0, le=3600, description="Seconds the breaker stays open before one probe."),
    ] = 15.0


class OfflineAction(StrEnum):
    OPEN = "open"
    DENY = "deny"


class GateConfig(_Section):
    """The barrier's relay and what the gate does when central does not answer in time (the
    local lists first, then the offline policy; docs/edge.md, "The gate")."""

    driver: Annotated[
        Literal["log", "gpio", "file"],
        Field(
            description="`gpio`: the relay on a GPIO pin (gpiozero); `log`: log the pulses;"
            " `file`: append each pulse as a JSON line to `record_file` (machines without GPIO:"
            " the demo, tests, benches)."
        ),
    ] = "log"
    pin: Annotated[int, Field(ge=0, le=40, description="`gpio`: the relay's BCM pin.")] = 17
    active_high: Annotated[
        bool, Field(description="`gpio`: the relay closes on a high pin (false: on low).")
    ] = True
    record_file: Annotated[
        Path | None, Field(description="`file`: the file the pulses go to (required there).")
    ] = None
    open_pulse_s: Annotated[
        float, Field(gt=0, le=30, description="Seconds the relay closes for one open.")
    ] = 1.0
    deadline_s: Annotated[
        float,
        Field(
            gt=0,
            le=30,
            description="Seconds the gate waits for central's decision before deciding alone.",
        ),
    ] = 1.5
    offline_entry: Annotated[
        OfflineAction,
        Field(description="Decided alone, an entry whose plate is on no list: open or deny."),
    ] = OfflineAction.OPEN
    offline_exit: Annotated[
        OfflineAction,
        Field(description="Decided alone, an exit whose plate is on no list: open or deny."),
    ] = OfflineAction.OPEN
    flag_offline_exit: Annotated[
        bool, Field(description="Flag exits decided alone for review at central.")
    ] = True

    @model_validator(mode="after")
    def _record_file(self) -> GateConfig:
        if self.driver == "file" and self.record_file is None:
            raise ValueError('driver "file" needs record_file (the file the pulses go to)')
        return self


class CommandsConfig(_Section):
    """The lane's command channel: a long poll to central for operators' and payments' open
    orders, each executed at most once (docs/edge.md, "The command channel")."""

    enabled: Annotated[bool, Field(description="Hold the command channel.")] = True
    wait_s: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_COMMAND_WAIT_S,
            description="Seconds central holds a poll open when it has nothing; below the load"
            " balancer's read timeout for polls (nginx_lane_poll_read_timeout_s, 45 s).",
        ),
    ] = 20
    retry_cap_s: Annotated[
        float,
        Field(
            gt=0,
            le=600,
            description="Longest wait between two polls after failures (the first retry comes"
            " after ~0.5 s).",
        ),
    ] = 10.0


class ListsConfig(_Section):
    """The local copy of the lot's allow/deny lists and passes, for decisions taken without
    central."""

    enabled: Annotated[bool, Field(description="Keep the local copy in sync.")] = True
    sync_interval_s: Annotated[
        float, Field(gt=0, le=86400, description="Seconds between two syncs.")
    ] = 60.0
    retry_cap_s: Annotated[
        float, Field(gt=0, le=3600, description="Longest wait between syncs after failures.")
    ] = 30.0


class ClockConfig(_Section):
    """When the wall clock may stamp events; sightings wait in memory until then (docs/edge.md,
    "The clock")."""

    require_sync: Annotated[
        ClockRequirement,
        Field(
            description="`kernel`: the kernel says an NTP daemon synchronised the clock"
            " (adjtimex) and it reads 2024-01-01 or later: a Pi (the Ansible role sets it)."
            " `floor`: only the 2024-01-01 floor: machines whose kernel state says nothing about"
            " their clock (containers, VMs, the demo, tests). `none`: the wall clock as it is."
        ),
    ] = "floor"
    max_held: Annotated[
        int,
        Field(
            ge=1,
            le=10_000,
            description="Sightings held in memory until then (each with its snapshot, at most"
            " 512 KiB); beyond it the oldest are dropped, logged and counted.",
        ),
    ] = 200


class HeartbeatConfig(_Section):
    """The lane's health report to central (queue depth, captured/delivered totals, ...)."""

    interval_s: Annotated[
        float, Field(gt=0, le=3600, description="Seconds between two heartbeats.")
    ] = 10.0


class MetricsConfig(_Section):
    """The agent's Prometheus `/metrics`."""

    host: Annotated[str, Field(description="Address `/metrics` listens on.")] = "127.0.0.1"
    port: Annotated[
        int, Field(ge=0, le=65535, description="Port of `/metrics` (0: any free port).")
    ] = 9108
    enabled: Annotated[bool, Field(description="Serve `/metrics`.")] = True


class SentryConfig(_Section):
    """Errors to Sentry (docs/monitoring.md); nothing is sent without a DSN."""

    dsn: Annotated[
        str | None,
        Field(
            description="The Sentry DSN; the environment variable `PARKING_EDGE_SENTRY_DSN`"
            " wins (the role takes it from the vault)."
        ),
    ] = None
    environment: Annotated[str, Field(description="Environment name reported.")] = "production"
    release: Annotated[
        str | None, Field(description="Release reported; unset: `parking-edge@<version>`.")
    ] = None
    traces_sample_rate: Annotated[
        float, Field(ge=0, le=1, description="Share of transactions traced (0: errors only).")
    ] = 0.0


class EdgeConfig(_Section):
    """The agent's one configuration file (TOML): one lane, one camera."""

    camera: CameraConfig
    central: CentralConfig
    source: SourceConfig
    reader: ReaderConfig = ReaderConfig()
    aggregate: AggregateConfig = AggregateConfig()
    outbox: OutboxConfig = OutboxConfig()
    uploader: UploaderConfig = UploaderConfig()
    gate: GateConfig = GateConfig()
    commands: CommandsConfig = CommandsConfig()
    lists: ListsConfig = ListsConfig()
    clock: ClockConfig = ClockConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    metrics: MetricsConfig = MetricsConfig()
    sentry: SentryConfig = SentryConfig()


def describe_errors(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        parts.append(f"{key}: {message}")
    return "; ".join(parts)


def load_config(path: Path) -> EdgeConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}") from exc
    return parse_config(raw, origin=str(path))


def parse_config(raw: Mapping[str, object], *, origin: str = "config") -> EdgeConfig:
    # Relative paths in the file are relative to the process; keep env overrides for secrets.
    try:
        config = EdgeConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config {origin}: {describe_errors(exc)}") from None
    env_key = os.environ.get("PARKING_EDGE_API_KEY")
    if env_key:
        camera = config.camera.model_copy(update={"api_key": env_key, "api_key_file": None})
        config = config.model_copy(update={"camera": camera})
    return config

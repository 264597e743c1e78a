"""The agent's one configuration file (TOML), read and checked in one place.

An invalid file stops the agent with a message that names the key, e.g.
``config /etc/parking-edge/edge.toml: gate.deadline_s: Input should be greater than 0``.
"""

from __future__ import annotations

import os
import re
import tomllib
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
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Section):
    id: Annotated[str, Field(pattern=_CAMERA_ID)]
    direction: CameraDirection
    lot: str | None = None  # the lot the lane belongs to; only tags error reports (Sentry)
    api_key: str | None = None
    api_key_file: Path | None = None

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
    url: Annotated[str, Field(pattern=r"^https?://")]  # the VIP in front of central
    connect_timeout_s: Annotated[float, Field(gt=0, le=30)] = 2.0
    read_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    # How long one call keeps trying on fresh connections while the VIP moves (0: never).
    vip_move_budget_s: Annotated[float, Field(ge=0, le=60)] = 6.0
    ca_file: Path | None = None
    verify_tls: bool = True


class SourceKind(StrEnum):
    FOLDER = "folder"
    OPENCV = "opencv"
    PICAMERA2 = "picamera2"


class SourceConfig(_Section):
    kind: SourceKind
    path: Path | None = None  # folder
    uri: str | None = None  # opencv: file, rtsp://..., or a USB index "0"
    fps: Annotated[float, Field(ge=0, le=120)] = 5.0
    loop: bool = False
    frames_per_image: Annotated[int, Field(ge=1, le=100)] = 3
    gap_frames: Annotated[int, Field(ge=0, le=100)] = 1
    limit: Annotated[int, Field(ge=1)] | None = None  # folder: replay only the first N pictures
    width: Annotated[int, Field(ge=64, le=8192)] = 1920
    height: Annotated[int, Field(ge=64, le=8192)] = 1080

    @model_validator(mode="after")
    def _target(self) -> SourceConfig:
        if self.kind is SourceKind.FOLDER and self.path is None:
            raise ValueError("kind 'folder' needs path")
        if self.kind is SourceKind.OPENCV and not self.uri:
            raise ValueError("kind 'opencv' needs uri")
        return self


class ReaderConfig(_Section):
    # "litert": the TFLite plate reader (docs/reader.md). "sidecar": a test stand-in that
    # replays the ground truth written next to replayed images (openalpr-us format).
    kind: Literal["sidecar", "litert"] = "sidecar"
    confidence: Annotated[float, Field(ge=0, le=1)] = 0.9  # sidecar only
    threads: Annotated[int, Field(ge=1, le=16)] = 1
    models_dir: Path | None = None  # default: the models shipped in app/edge/models
    # Region profiles in order of preference (app/edge/reader/plate_regions/*.toml, see
    # docs/reader.md): "vn" (Vietnamese formats only: anything else is rejected), "us", "br",
    # "eu" (formats fixed letter/digit slots are corrected in; other reads come back as read),
    # "generic" (4-8 letters and digits as read, no layout, no correction).
    regions: Annotated[list[str], Field(min_length=1)] = ["vn", "generic"]
    # "generic" only: what it takes as a plate (regular expressions over letters and digits).
    generic_patterns: Annotated[list[str], Field(min_length=1)] = ["[A-Z0-9]{4,8}"]
    # Deprecated (before region profiles): `grammars` is read as `regions`; layouts and
    # one-glyph pairs for the "generic" profile ("9LLL999", "O0": use regions = ["us"]).
    grammars: Annotated[list[Literal["vn", "generic"]], Field(min_length=1)] | None = None
    generic_templates: list[Annotated[str, Field(pattern=r"^[9AL*][9AL* .\-/]*$")]] = []
    generic_fold: Annotated[str, Field(pattern=r"^([A-Z0-9][A-Z0-9])*$")] = ""
    max_plates: Annotated[int, Field(ge=1, le=10)] = 1  # plates reported per frame
    # Full-frame text detector: "fast" (384x640), "fine" (544x960: small plates in wide
    # scenes are found far more often, at ~2x the time per frame) or "cascade" (the fast one,
    # then the fine one only when the fast one found no plate it can trust: nearly the fine
    # one's reads at ~1.4x the fast one's time, but both in memory: ~+120 MB).
    detector: Detector = "fast"
    # A second, zoomed look for frames where no plate was found (small plates: a motorbike's
    # across the street): the full-frame detector over an N x N grid of overlapping tiles, each
    # upscaled to its input. 0 = off (the default; docs/reader.md has the cost), 2..4 tiles a side.
    zoom_tiles: Annotated[int, Field(ge=0, le=4)] = 0

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
    min_agreeing: Annotated[int, Field(ge=1, le=50)] = 3
    window_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    leave_after_s: Annotated[float, Field(gt=0, le=60)] = 1.5
    cooldown_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    min_support_on_leave: Annotated[int, Field(ge=1, le=50)] = 1


class OutboxConfig(_Section):
    dir: Path = Path("/var/lib/parking-edge")
    max_bytes: Annotated[int, Field(ge=1 << 20)] = 1 << 30
    max_permanent_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    snapshot_max_side: Annotated[int, Field(ge=160, le=4096)] = 1280
    snapshot_quality: Annotated[int, Field(ge=30, le=100)] = 85


class UploaderConfig(_Section):
    batch_max_events: Annotated[int, Field(ge=1, le=100)] = 100
    # Central refuses bodies over 1 MiB by default; stay under it.
    batch_max_bytes: Annotated[int, Field(ge=64 << 10)] = 900_000
    backoff_base_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    backoff_cap_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    breaker_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    breaker_reset_s: Annotated[float, Field(gt=0, le=3600)] = 15.0


class OfflineAction(StrEnum):
    OPEN = "open"
    DENY = "deny"


class GateConfig(_Section):
    # "gpio": the relay on a GPIO pin (gpiozero); "log": log the pulses; "file": append each
    # pulse as a JSON line to record_file (machines without GPIO: the demo, tests, benches).
    driver: Literal["log", "gpio", "file"] = "log"
    pin: Annotated[int, Field(ge=0, le=40)] = 17
    active_high: bool = True
    record_file: Path | None = None  # driver "file" only
    open_pulse_s: Annotated[float, Field(gt=0, le=30)] = 1.0
    deadline_s: Annotated[float, Field(gt=0, le=30)] = 1.5
    offline_entry: OfflineAction = OfflineAction.OPEN
    offline_exit: OfflineAction = OfflineAction.OPEN
    flag_offline_exit: bool = True

    @model_validator(mode="after")
    def _record_file(self) -> GateConfig:
        if self.driver == "file" and self.record_file is None:
            raise ValueError('driver "file" needs record_file (the file the pulses go to)')
        return self


class CommandsConfig(_Section):
    # The lane's command channel: a long poll to central for operators' orders (open the
    # barrier), each executed at most once (docs/edge.md).
    enabled: bool = True
    # Seconds central holds a poll open when it has nothing; below the load balancer's read
    # timeout for polls (nginx_lane_poll_read_timeout_s, 45 s).
    wait_s: Annotated[int, Field(ge=1, le=MAX_COMMAND_WAIT_S)] = 20
    # Longest wait between two polls after failures (the first retry comes after ~0.5 s).
    retry_cap_s: Annotated[float, Field(gt=0, le=600)] = 10.0


class ListsConfig(_Section):
    # The local copy of the lot's allow/deny lists and passes (offline gate decisions).
    enabled: bool = True
    sync_interval_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    retry_cap_s: Annotated[float, Field(gt=0, le=3600)] = 30.0


class ClockConfig(_Section):
    # When the wall clock may stamp events (docs/edge.md, "The clock"). "kernel": the kernel
    # says an NTP daemon synchronised it (adjtimex) and it is at or after 2024-01-01: a Pi
    # (the Ansible role sets it). "floor": only the 2024-01-01 floor: machines whose kernel
    # state says nothing about their clock (containers, VMs, the demo, tests). "none": the wall
    # clock as it is.
    require_sync: ClockRequirement = "floor"
    # Sightings held in memory until then (each with its snapshot, at most 512 KiB); beyond
    # it the oldest are dropped, logged and counted.
    max_held: Annotated[int, Field(ge=1, le=10_000)] = 200


class HeartbeatConfig(_Section):
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class MetricsConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9108
    enabled: bool = True


class SentryConfig(_Section):
    dsn: str | None = None  # env PARKING_EDGE_SENTRY_DSN wins; the DSN comes from vault
    environment: str = "production"
    release: str | None = None  # default parking-edge@<version>
    # Share of transactions traced (0: errors only).
    traces_sample_rate: Annotated[float, Field(ge=0, le=1)] = 0.0


class EdgeConfig(_Section):
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


def parse_config(raw: dict[str, object], *, origin: str = "config") -> EdgeConfig:
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

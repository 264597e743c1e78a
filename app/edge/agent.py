"""Wires the edge together: source -> reader -> aggregator -> event -> outbox -> uploader.

``EdgeRuntime`` owns what every mode shares (outbox, uploader, heartbeats, metrics, systemd,
the clock and its hold, and each lane's command channel to its relay); ``LaneAgent`` drives it
from a camera; ``Simulator`` from synthetic plates (load tests, demo). Sightings become events
through ``EdgeRuntime.sight``: at once while the clock is synchronised, else held in capture
order and stamped once it is (``clock.py``, ``hold.py``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import ValidationError

from app.contract import (
    CameraDirection,
    EventAck,
    GateAction,
    GateReason,
    OfflineBasis,
    OfflineDecision,
    PlateCandidate,
    PlateEvent,
    VehicleType,
)
from app.edge.aggregate import ReadAggregator, Sighting
from app.edge.clock import ClockRequirement, SystemClock, WallClock
from app.edge.commands import CommandJournal, CommandListener
from app.edge.config import EdgeConfig, SourceKind
from app.edge.decisions import OfflineJournal
from app.edge.gate import (
    FileRelay,
    GateController,
    GateOutcome,
    LoggingRelay,
    OfflinePolicy,
    Relay,
)
from app.edge.heartbeat import FrameRate, HeartbeatSender, HeartbeatSource
from app.edge.hold import ClockHold, Held
from app.edge.ids import EventIdFactory
from app.edge.lists import LocalLists
from app.edge.logs import event_fields
from app.edge.metrics import EdgeMetrics, MetricsServer
from app.edge.outbox import Outbox, OutboxFullError
from app.edge.reader import PlateReader
from app.edge.snapshot import encode_snapshot
from app.edge.sources import FrameSource
from app.edge.sync import EdgeSync
from app.edge.systemd import SystemdNotifier
from app.edge.uploader import (
    BREAKER_GAUGE,
    Backoff,
    BreakerState,
    CentralClient,
    CircuitBreaker,
    Uploader,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lane:
    camera_id: str
    direction: CameraDirection
    api_key: str


@dataclass
class RuntimeSettings:
    central_url: str
    data_dir: Path
    outbox_max_bytes: int = 1 << 30
    max_permanent_attempts: int = 3
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 10.0
    vip_move_budget_s: float = 6.0
    verify_tls: bool | str = True
    batch_max_events: int = 100
    batch_max_bytes: int = 900_000
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    breaker_failures: int = 5
    breaker_reset_s: float = 15.0
    heartbeat_interval_s: float = 10.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no /metrics server
    # The lanes' command channels (commands.py); only for lanes given a relay at build().
    commands_enabled: bool = True
    commands_wait_s: int = 20
    commands_retry_cap_s: float = 10.0
    open_pulse_s: float = 1.0  # a command's pulse (and the simulator's on an OPEN ack)
    # When the wall clock may stamp events (clock.py), and how many sightings wait meanwhile.
    clock_require_sync: ClockRequirement = "floor"
    clock_max_held: int = 200


@dataclass(slots=True)
class PendingSighting:
    """A sighting on its way to becoming an event (``EdgeRuntime.sight``)."""

    lane: Lane
    plate: str
    confidence: float
    candidates: list[PlateCandidate]
    vehicle_type: VehicleType
    snapshot: bytes | None
    # Held while the clock is unsynchronised: the gate's own decision, and who records it.
    gate: Future[GateOutcome] | None = None
    report: Callable[[GateOutcome], None] | None = None
    made: tuple[PlateEvent, Future[EventAck]] | None = None  # stamped at once


@dataclass
class EdgeRuntime:
    """The durable half of the agent, the same for a real lane and the simulator."""

    lanes: list[Lane]
    outbox: Outbox
    uploader: Uploader
    metrics: EdgeMetrics
    heartbeats: HeartbeatSender
    notifier: SystemdNotifier
    ids: EventIdFactory = field(default_factory=EventIdFactory)
    metrics_server: MetricsServer | None = None
    started_monotonic: float = field(default_factory=time.monotonic)
    sync: EdgeSync | None = None  # lists + offline-decision reports (a lane agent's)
    # Each lane's barrier relay (by camera id); the runtime uses them, their owner closes them.
    relays: dict[str, Relay] = field(default_factory=dict)
    command_journal: CommandJournal | None = None
    listeners: list[CommandListener] = field(default_factory=list)
    open_pulse_s: float = 1.0
    clock: WallClock = field(default_factory=SystemClock)
    max_held: int = 200
    hold: ClockHold[PendingSighting] = field(init=False)

    def __post_init__(self) -> None:
        self.hold = ClockHold(self.clock, self._stamp, max_held=self.max_held, dropped=self._drop)
        self.metrics.bind_clock(lambda: self.hold.synchronised, lambda: self.hold.held)

    @classmethod
    def build(
        cls,
        settings: RuntimeSettings,
        lanes: list[Lane],
        *,
        frame_rate: FrameRate | None = None,
        reads_rejected: Callable[[], int] = lambda: 0,
        rng: random.Random | None = None,
        relays: Mapping[str, Relay] | None = None,
        clock: WallClock | None = None,
    ) -> EdgeRuntime:
        """``relays``: the barrier relay of each lane (by camera id). A lane with one gets a
        command channel (a ``CommandListener`` pulsing it) unless ``commands_enabled`` is off;
        all lanes share one ``CommandJournal`` under ``data_dir/commands``. ``clock``: the
        wall clock judge (default: ``SystemClock(settings.clock_require_sync)``)."""
        metrics = EdgeMetrics()
        wall_clock = clock if clock is not None else SystemClock(settings.clock_require_sync)
        outbox = Outbox(
            settings.data_dir / "outbox",
            max_bytes=settings.outbox_max_bytes,
            max_permanent_attempts=settings.max_permanent_attempts,
        )
        removed = outbox.remove_orphan_snapshots()
        if removed:
            log.info("outbox: removed %d snapshot files left by an interrupted write", removed)
        metrics.bind_outbox(outbox.stats)

        def on_breaker(state: BreakerState) -> None:
            metrics.breaker_state.set(BREAKER_GAUGE[state])
            metrics.breaker_transitions.labels(state.value).inc()

        client = CentralClient(
            settings.central_url,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            vip_move_budget_s=settings.vip_move_budget_s,
            verify=settings.verify_tls,
            metrics=metrics,
        )
        uploader = Uploader(
            outbox,
            client,
            {lane.camera_id: lane.api_key for lane in lanes},
            breaker=CircuitBreaker(
                failure_threshold=settings.breaker_failures,
                reset_after_s=settings.breaker_reset_s,
                on_change=on_breaker,
            ),
            backoff=Backoff(
                base_s=settings.backoff_base_s,
                cap_s=settings.backoff_cap_s,
                rng=rng or random.Random(),  # noqa: S311 - jitter, not secrecy
            ),
            batch_max_events=settings.batch_max_events,
            batch_max_bytes=settings.batch_max_bytes,
            metrics=metrics,
        )
        started = time.monotonic()
        sources = [
            HeartbeatSource(
                camera_id=lane.camera_id,
                outbox=outbox,
                started_monotonic=started,
                frame_rate=frame_rate,
                reads_rejected=reads_rejected,
            )
            for lane in lanes
        ]
        # sent_at is the wall clock as it is, 1970 included: central keeps its own receipt time
        # and only shows sent_at, and a wrong one there says what is wrong at the lane.
        heartbeats = HeartbeatSender(
            sources, uploader, interval_s=settings.heartbeat_interval_s, clock=wall_clock.now
        )
        relays = dict(relays or {})
        journal: CommandJournal | None = None
        listeners: list[CommandListener] = []
        commanded = [lane for lane in lanes if lane.camera_id in relays]
        if settings.commands_enabled and commanded:
            journal = CommandJournal(settings.data_dir / "commands")
            listeners = [
                CommandListener(
                    settings.central_url,
                    lane.camera_id,
                    lane.api_key,
                    relays[lane.camera_id],
                    journal,
                    open_pulse_s=settings.open_pulse_s,
                    wait_s=settings.commands_wait_s,
                    retry_cap_s=settings.commands_retry_cap_s,
                    connect_timeout_s=settings.connect_timeout_s,
                    read_timeout_s=settings.read_timeout_s,
                    verify=settings.verify_tls,
                    metrics=metrics,
                    rng=rng,
                )
                for lane in commanded
            ]
        server = None
        if settings.metrics_port is not None:
            server = MetricsServer(metrics, settings.metrics_host, settings.metrics_port)
        runtime = cls(
            lanes=lanes,
            outbox=outbox,
            uploader=uploader,
            metrics=metrics,
            heartbeats=heartbeats,
            notifier=SystemdNotifier(),
            metrics_server=server,
            started_monotonic=started,
            relays=relays,
            command_journal=journal,
            listeners=listeners,
            open_pulse_s=settings.open_pulse_s,
            clock=wall_clock,
            max_held=settings.clock_max_held,
        )
        for source in sources:
            source.last_error = runtime.status_text
        return runtime

    def status_text(self) -> str | None:
        """The heartbeat's ``last_error``: the clock's state while it holds sightings (the
        contract has no field for it), then the uploader's last error."""
        problem = getattr(self.clock, "problem", None)
        parts = [
            self.hold.describe(),
            problem if isinstance(problem, str) else None,
            self.uploader.last_error,
        ]
        return "; ".join(part for part in parts if part) or None

    def start(self) -> None:
        self.hold.start()
        self.uploader.start()
        self.heartbeats.start()
        if self.sync is not None:
            self.sync.start()
        for listener in self.listeners:
            listener.start()
        commands = f", {len(self.listeners)} command channel(s)" if self.listeners else ""
        clock = "" if self.hold.synchronised else ", clock not synchronised (sightings held)"
        self.notifier.ready(
            f"{len(self.lanes)} lane(s), outbox {self.outbox.directory}{commands}{clock}"
        )

    def sight(
        self,
        lane: Lane,
        *,
        captured_mono: float,
        captured_wall: datetime | None,
        plate: str,
        confidence: float,
        candidates: list[PlateCandidate],
        vehicle_type: VehicleType,
        snapshot: bytes | None,
        decide_alone: Callable[[str], Future[GateOutcome]] | None = None,
        report: Callable[[GateOutcome], None] | None = None,
    ) -> tuple[PlateEvent, Future[EventAck]] | None:
        """A sighting at ``captured_mono`` (its frame's ``monotonic()``): made into an event now
        (returned as ``capture`` does) while the clock is synchronised, else held (None) and
        stamped later. A held one gets ``decide_alone(cause)`` at once (the gate, which cannot
        wait for central: there is no event to send) and, once stamped, ``report`` gets that
        outcome with its event id and decision time."""
        item = PendingSighting(
            lane, plate, confidence, candidates, vehicle_type, snapshot, report=report
        )

        def held(entry: Held[PendingSighting]) -> None:
            if decide_alone is not None:
                item.gate = decide_alone(entry.token)

        self.hold.submit(
            item,
            camera_id=lane.camera_id,
            captured_mono=captured_mono,
            captured_wall=captured_wall,
            on_held=held,
        )
        return item.made

    def _stamp(self, held: Held[PendingSighting], captured_at: datetime, was_held: bool) -> None:
        """The hold's ``stamp``: make the event (under the hold's lock, in capture order)."""
        item = held.item
        camera = item.lane.camera_id
        try:
            made = self.capture(
                item.lane,
                captured_at=captured_at,
                plate=item.plate,
                confidence=item.confidence,
                candidates=item.candidates,
                vehicle_type=item.vehicle_type,
                snapshot=item.snapshot,
            )
        except ValidationError as exc:
            # require_sync = "none" with a clock before the contract's floor: not an event.
            log.error(
                "%s (%s) of %s: no event can be made: %s", held.token, item.plate, camera, exc
            )
            self.metrics.events_refused.labels(camera).inc()
            self.outbox.count_lost(camera, "refused_total")
            return
        if not was_held:
            item.made = made
            return
        event, _ = made
        # Nobody waits for central's answer: the vehicle has long gone, the gate decided alone.
        self.uploader.forget_waiter(event.event_id)
        log.info(
            "%s (%s) of %s stamped %s: event %s",
            held.token,
            item.plate,
            camera,
            captured_at.isoformat(),
            event.event_id,
            extra=event_fields(event.event_id, camera, outcome="captured"),
        )
        if item.gate is not None and item.report is not None:
            report = item.report

            def recorded(done: Future[GateOutcome]) -> None:
                if done.cancelled() or done.exception() is not None:
                    return  # the gate logged its failure
                outcome = done.result()
                decided_at = captured_at
                if outcome.decided_mono is not None:
                    elapsed = self.clock.monotonic() - outcome.decided_mono
                    decided_at = self.clock.now() - timedelta(seconds=max(0.0, elapsed))
                report(replace(outcome, event_id=event.event_id, decided_at=decided_at))

            item.gate.add_done_callback(recorded)

    def _drop(self, held: Held[PendingSighting], why: str) -> None:
        """The hold's ``dropped``: logged, counted (metric; outbox, for the reconciliation)."""
        item = held.item
        camera = item.lane.camera_id
        self.metrics.sightings_dropped.labels(camera).inc()
        self.outbox.count_lost(camera)
        decision = ""
        gate = item.gate
        if gate is not None and gate.done() and not gate.cancelled() and not gate.exception():
            outcome = gate.result()
            decision = f"; its gate decision ({outcome.action} by {outcome.basis}) is not reported"
        log.error(
            "clock: dropped %s (%s) of %s, held %.0f s: %s%s",
            held.token,
            item.plate,
            camera,
            self.clock.monotonic() - held.captured_mono,
            why,
            decision,
        )

    def capture(
        self,
        lane: Lane,
        *,
        captured_at: datetime,
        plate: str,
        confidence: float,
        candidates: list[PlateCandidate],
        vehicle_type: VehicleType,
        snapshot: bytes | None,
    ) -> tuple[PlateEvent, Future[EventAck]]:
        """Make the event, store it durably, wake the uploader. The future gets central's ack
        (or an exception when the event was refused or dead-lettered)."""
        event = PlateEvent(
            event_id=self.ids.new(captured_at),
            camera_id=lane.camera_id,
            captured_at=captured_at,
            plate=plate,
            confidence=confidence,
            vehicle_type=vehicle_type,
            candidates=candidates,
        )
        future = self.uploader.waiter(event.event_id)
        self.metrics.events_captured.labels(lane.camera_id).inc()
        try:
            self.outbox.enqueue(event, snapshot)
        except OutboxFullError as exc:
            self.metrics.events_refused.labels(lane.camera_id).inc()
            self.uploader.forget_waiter(event.event_id)
            future.set_exception(exc)
            return event, future
        self.uploader.wake()
        return event, future

    def drained(self) -> bool:
        """Nothing left for central: no held sighting, no queued event and no unreported
        offline decision."""
        if self.hold.held or self.outbox.stats().depth:
            return False
        return self.sync is None or self.sync.journal.stats().unreported == 0

    def stop_commands(self) -> None:
        """Stop taking commands (before the relays close); each listener within ~1.5 s."""
        for listener in self.listeners:
            listener.stop()

    def close(self) -> None:
        """Stop sending, close the outbox cleanly (a checkpointed WAL), tell systemd. Held
        sightings are stamped if the clock now allows, else dropped (logged, counted)."""
        self.notifier.stopping()
        self.stop_commands()
        self.hold.close()
        self.heartbeats.stop()
        self.uploader.stop()
        if self.sync is not None:
            self.sync.stop()
            self.sync.journal.close()
        if self.command_journal is not None:
            self.command_journal.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.outbox.close()
        self.notifier.close()


class LaneAgent:
    """One camera at one lane: frames in, events and gate actions out."""

    def __init__(
        self,
        runtime: EdgeRuntime,
        lane: Lane,
        source: FrameSource,
        reader: PlateReader,
        aggregator: ReadAggregator,
        gate: GateController | None,
        *,
        frame_rate: FrameRate,
        snapshot_max_side: int = 1280,
        snapshot_quality: int = 85,
    ) -> None:
        self.runtime = runtime
        self.lane = lane
        self.source = source
        self.reader = reader
        self.aggregator = aggregator
        self.gate = gate
        self.frame_rate = frame_rate
        self._snapshot_max_side = snapshot_max_side
        self._snapshot_quality = snapshot_quality
        self.gate_outcomes: list[Future[GateOutcome]] = []

    def emit(self, sighting: Sighting) -> PlateEvent | None:
        """Make the sighting an event and let the gate act; None: held for the clock (the gate
        has decided alone already) or refused."""
        snapshot = encode_snapshot(
            sighting.frame.image, max_side=self._snapshot_max_side, quality=self._snapshot_quality
        )
        gate = self.gate

        def decide_alone(cause: str) -> Future[GateOutcome]:
            assert gate is not None
            outcome = gate.decide_alone(sighting.plate, cause=cause)
            self.gate_outcomes = [f for f in self.gate_outcomes if not f.done()] + [outcome]
            return outcome

        made = self.runtime.sight(
            self.lane,
            captured_mono=sighting.frame.monotonic_s,
            captured_wall=sighting.captured_at,
            plate=sighting.plate,
            confidence=sighting.confidence,
            candidates=sighting.candidates,
            vehicle_type=sighting.vehicle_type,
            snapshot=snapshot,
            decide_alone=decide_alone if gate is not None else None,
            report=gate.record if gate is not None else None,
        )
        if made is None:
            if not self.runtime.hold.synchronised:  # else refused, and logged as such
                log.info(
                    "sighting %s (%.2f, %d reads) held: the clock is not synchronised",
                    sighting.plate,
                    sighting.confidence,
                    sighting.support,
                )
            return None
        event, ack = made
        log.info(
            "event %s: %s (%.2f, %d reads)",
            event.event_id,
            event.plate,
            event.confidence,
            sighting.support,
            extra=event_fields(event.event_id, event.camera_id, outcome="captured"),
        )
        if self.gate is not None:
            event_id = event.event_id
            outcome = self.gate.handle(
                event_id, ack, lambda: self.runtime.uploader.forget_waiter(event_id), event.plate
            )
            self.gate_outcomes = [f for f in self.gate_outcomes if not f.done()] + [outcome]
        return event

    def run(self, stop: threading.Event, *, exit_when_drained: bool = False) -> int:
        """Process frames until ``stop``; returns the number of sightings (events made now or
        held for the clock)."""
        notifier = self.runtime.notifier
        made = 0
        for frame in self.source.frames():
            if stop.is_set():
                break
            started = time.perf_counter()
            reads = self.reader.read(frame)
            elapsed = time.perf_counter() - started
            self.frame_rate.add(elapsed)
            self.runtime.metrics.frames.inc()
            self.runtime.metrics.inference_seconds.observe(elapsed)
            for sighting in self.aggregator.feed(frame, reads):
                self.emit(sighting)
                made += 1
            notifier.watchdog()
        for sighting in self.aggregator.flush(time.monotonic()):
            self.emit(sighting)
            made += 1
        # The source ended (a finite replay): keep delivering until told to stop.
        while not stop.wait(0.2):
            notifier.watchdog()
            if exit_when_drained and self.runtime.drained():
                break
        self.source.close()
        return made

    def close(self) -> None:
        """Stop in order: commands (they use the relay), the gate (it waits for its pending
        decisions, then closes the relay), then the runtime."""
        self.runtime.stop_commands()
        if self.gate is not None:
            self.gate.close()
        self.runtime.close()


# -- simulation ------------------------------------------------------------------------------


def synthetic_plate(rng: random.Random) -> str:
    """A Vietnamese-style car plate, e.g. ``51F-123.45``."""
    province = rng.randint(11, 99)
    series = rng.choice("ABCDEFGHKLMNPSTUVXYZ")
    digits = rng.randint(0, 99999)
    return f"{province}{series}-{digits // 100:03d}.{digits % 100:02d}"


def synthetic_snapshot(plate: str, rng: random.Random) -> bytes:
    """A small JPEG with the plate drawn on it, so the dashboard has something to show."""
    paper = np.full((120, 360, 3), 235, dtype=np.uint8)
    noise = np.frombuffer(rng.randbytes(120 * 360 * 3), dtype=np.uint8).reshape(120, 360, 3)
    image = cv2.addWeighted(paper, 0.9, noise, 0.1, 0)
    cv2.rectangle(image, (8, 8), (352, 112), (20, 20, 20), 3)
    cv2.putText(image, plate, (22, 78), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (10, 10, 10), 3)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


class Simulator:
    """Synthetic vehicles entering and, after a dwell, leaving, through the real outbox.

    A lane with a relay in ``runtime.relays`` behaves like a real one: central's ack of its
    event saying OPEN pulses it (``cause="event:<id>"``, off the uploader's thread); HOLD and
    DENY leave it closed (a held exit then waits for the cashier's command)."""

    def __init__(
        self,
        runtime: EdgeRuntime,
        *,
        rate: float,
        dwell_s: tuple[float, float] = (20.0, 120.0),
        rng: random.Random | None = None,
        snapshots: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.rate = rate
        self.dwell_s = dwell_s
        self.rng = rng or random.Random()  # noqa: S311 - synthetic traffic
        self.snapshots = snapshots
        self._clock = clock
        self._entries = [lane for lane in runtime.lanes if lane.direction is CameraDirection.ENTRY]
        self._exits = [lane for lane in runtime.lanes if lane.direction is CameraDirection.EXIT]
        self._inside: list[tuple[float, str]] = []  # (leaves at, plate)
        self.made = 0
        self.actions: dict[str, int] = {}  # central's gate actions seen, by action
        self._pulses = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-gate")
        self._pulses_lock = threading.Lock()
        self._closed = False

    def _next(self, now: float) -> tuple[Lane, str]:
        if self._exits and self._inside and (self._inside[0][0] <= now or not self._entries):
            _, plate = self._inside.pop(0)
            return self.rng.choice(self._exits), plate
        lane = self.rng.choice(self._entries or self._exits)
        plate = synthetic_plate(self.rng)
        if lane.direction is CameraDirection.ENTRY and self._exits:
            self._inside.append((now + self.rng.uniform(*self.dwell_s), plate))
            self._inside.sort()
        return lane, plate

    def step(self) -> PlateEvent | None:
        """One vehicle; None when it is held for the clock (its relay then stays as it is)."""
        lane, plate = self._next(self._clock())
        confidence = round(self.rng.uniform(0.82, 0.99), 3)
        clock = self.runtime.clock
        made = self.runtime.sight(
            lane,
            captured_mono=clock.monotonic(),
            captured_wall=clock.now(),
            plate=plate,
            confidence=confidence,
            candidates=[PlateCandidate(plate=plate, confidence=confidence)],
            vehicle_type=VehicleType.CAR,
            snapshot=synthetic_snapshot(plate, self.rng) if self.snapshots else None,
        )
        self.made += 1
        if made is None:
            return None
        event, ack = made
        relay = self.runtime.relays.get(lane.camera_id)
        if relay is not None:
            ack.add_done_callback(lambda done: self._follow(done, relay))
        return event

    def _follow(self, done: Future[EventAck], relay: Relay) -> None:
        """Central's decision for one event (on the uploader's thread): pulse on OPEN."""
        if done.cancelled() or done.exception() is not None:
            return  # refused or dead-lettered: no decision, the barrier stays as it is
        decision = done.result().decision
        event_id = done.result().event_id
        with self._pulses_lock:
            self.actions[decision.action.value] = self.actions.get(decision.action.value, 0) + 1
            if decision.action is not GateAction.OPEN or self._closed:
                return
            self._pulses.submit(self._pulse, relay, event_id)

    def _pulse(self, relay: Relay, event_id: object) -> None:
        try:
            relay.pulse(self.runtime.open_pulse_s, cause=f"event:{event_id}")
        except Exception:
            log.exception("simulator: the relay failed for %s", event_id)

    def close(self) -> None:
        """Finish the pulses already due (before the relays close); later acks move nothing."""
        with self._pulses_lock:
            self._closed = True
        self._pulses.shutdown(wait=True)

    def run(
        self,
        stop: threading.Event,
        *,
        count: int | None = None,
        duration_s: float | None = None,
        exit_when_drained: bool = False,
    ) -> int:
        started = self._clock()
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        notifier = self.runtime.notifier
        while not stop.is_set():
            if count is not None and self.made >= count:
                break
            if duration_s is not None and self._clock() - started >= duration_s:
                break
            self.step()
            notifier.watchdog()
            due = started + self.made * interval
            delay = due - self._clock()
            if delay > 0 and stop.wait(delay):
                break
        while exit_when_drained and not stop.is_set() and not self.runtime.drained():
            notifier.watchdog()
            stop.wait(0.1)
        if not exit_when_drained:
            while not stop.wait(0.5):
                notifier.watchdog()
        return self.made


# -- from the config file ------------------------------------------------------------------


def build_lane_agent(config: EdgeConfig) -> LaneAgent:
    lane = Lane(config.camera.id, config.camera.direction, config.camera.resolved_api_key())
    verify: bool | str = str(config.central.ca_file) if config.central.ca_file else True
    if not config.central.verify_tls:
        verify = False
    frame_rate = FrameRate()
    aggregator = ReadAggregator(
        min_agreeing=config.aggregate.min_agreeing,
        window_s=config.aggregate.window_s,
        leave_after_s=config.aggregate.leave_after_s,
        cooldown_s=config.aggregate.cooldown_s,
        min_confidence=config.aggregate.min_confidence,
        min_support_on_leave=config.aggregate.min_support_on_leave,
    )
    gate_config = config.gate
    relay = open_relay(config, lane.camera_id)
    runtime = EdgeRuntime.build(
        RuntimeSettings(
            central_url=config.central.url,
            data_dir=config.outbox.dir,
            outbox_max_bytes=config.outbox.max_bytes,
            max_permanent_attempts=config.outbox.max_permanent_attempts,
            connect_timeout_s=config.central.connect_timeout_s,
            read_timeout_s=config.central.read_timeout_s,
            vip_move_budget_s=config.central.vip_move_budget_s,
            verify_tls=verify,
            batch_max_events=config.uploader.batch_max_events,
            batch_max_bytes=config.uploader.batch_max_bytes,
            backoff_base_s=config.uploader.backoff_base_s,
            backoff_cap_s=config.uploader.backoff_cap_s,
            breaker_failures=config.uploader.breaker_failures,
            breaker_reset_s=config.uploader.breaker_reset_s,
            heartbeat_interval_s=config.heartbeat.interval_s,
            metrics_host=config.metrics.host,
            metrics_port=config.metrics.port if config.metrics.enabled else None,
            commands_enabled=config.commands.enabled,
            commands_wait_s=config.commands.wait_s,
            commands_retry_cap_s=config.commands.retry_cap_s,
            open_pulse_s=gate_config.open_pulse_s,
            clock_require_sync=config.clock.require_sync,
            clock_max_held=config.clock.max_held,
        ),
        [lane],
        frame_rate=frame_rate,
        reads_rejected=lambda: aggregator.reads_rejected_total,
        relays={lane.camera_id: relay},  # the gate's own relay: commands pulse the same one
    )
    aggregator.on_reject = runtime.metrics.reads_rejected.inc
    outbox = runtime.outbox
    local_lists: LocalLists | None = None
    journal: OfflineJournal | None = None
    if config.lists.enabled:
        local_lists = LocalLists(config.outbox.dir / "lists")
        journal = OfflineJournal(config.outbox.dir / "gate")
        runtime.sync = EdgeSync(
            config.central.url,
            lane.api_key,
            local_lists,
            journal,
            interval_s=config.lists.sync_interval_s,
            retry_cap_s=config.lists.retry_cap_s,
            connect_timeout_s=config.central.connect_timeout_s,
            read_timeout_s=config.central.read_timeout_s,
            verify=verify,
        )

    def record(outcome: GateOutcome) -> None:
        runtime.metrics.gate_actions.labels(outcome.action.value, str(outcome.offline)).inc()
        if outcome.offline and journal is not None and runtime.sync is not None:
            journal.record(offline_record(lane.camera_id, outcome, local_lists))
            runtime.sync.wake()
        outbox.record_gate_action(
            event_id=outcome.event_id,
            camera_id=lane.camera_id,
            action=outcome.action.value,
            reason=str(outcome.reason),
            offline=outcome.offline,
            flagged=outcome.flagged,
        )

    gate = GateController(
        relay,
        direction=lane.direction,
        deadline_s=gate_config.deadline_s,
        open_pulse_s=gate_config.open_pulse_s,
        policy=OfflinePolicy(
            gate_config.offline_entry, gate_config.offline_exit, gate_config.flag_offline_exit
        ),
        record=record,
        lists=local_lists,
        monotonic=runtime.clock.monotonic,
    )
    return LaneAgent(
        runtime,
        lane,
        open_source(config),
        open_reader(config),
        aggregator,
        gate,
        frame_rate=frame_rate,
        snapshot_max_side=config.outbox.snapshot_max_side,
        snapshot_quality=config.outbox.snapshot_quality,
    )


def open_relay(config: EdgeConfig, camera_id: str) -> Relay:
    """The barrier relay of ``[gate] driver``: gpio (gpiozero), file (records) or log."""
    gate = config.gate
    if gate.driver == "gpio":
        from app.edge.gate import GpioRelay

        return GpioRelay(gate.pin, active_high=gate.active_high)
    if gate.driver == "file":
        assert gate.record_file is not None  # the config requires it
        return FileRelay(gate.record_file, camera_id=camera_id)
    return LoggingRelay()


def offline_record(
    camera_id: str, outcome: GateOutcome, lists: LocalLists | None
) -> OfflineDecision:
    """The report central gets of a decision the gate took alone."""
    return OfflineDecision(
        event_id=outcome.event_id,
        camera_id=camera_id,
        plate=outcome.plate[:20],
        decided_at=outcome.decided_at or datetime.now(UTC),
        action=outcome.action,
        reason=GateReason(outcome.reason),
        basis=outcome.basis or OfflineBasis.POLICY,
        flagged=outcome.flagged,
        lists_etag=lists.etag if lists is not None else None,
        lists_age_s=lists.age_s() if lists is not None else None,
    )


def open_reader(config: EdgeConfig) -> PlateReader:
    reader = config.reader
    if reader.kind == "litert":
        from app.edge.reader.litert import MODELS_DIR, LiteRTPlateReader

        common: dict[str, Any] = {
            "models_dir": reader.models_dir or MODELS_DIR,
            "threads": reader.threads,
            "regions": reader.regions,
            "generic_patterns": reader.generic_patterns,
            "generic_templates": reader.generic_templates,
            "same_glyphs": reader.generic_fold,
            "max_plates": reader.max_plates,
            "detector": reader.detector,
        }
        if reader.plate_models is not None:
            from app.edge.reader.plate_models import PlateModelsReader

            return PlateModelsReader(
                plate_models=reader.plate_models,
                # its rows are read by the narrow recognizer (the TFLite reader alone: not)
                beside=LiteRTPlateReader(narrow=True, **common),
                threads=reader.threads,
                detector=reader.detector,
            )
        return LiteRTPlateReader(zoom_tiles=reader.zoom_tiles, **common)
    from app.edge.reader.sidecar import GroundTruthSidecarReader

    return GroundTruthSidecarReader(confidence=reader.confidence)


def open_source(config: EdgeConfig) -> FrameSource:
    source = config.source
    if source.kind is SourceKind.FOLDER:
        from app.edge.sources.folder import ImageFolderSource

        assert source.path is not None
        return ImageFolderSource(
            source.path,
            fps=source.fps,
            loop=source.loop,
            frames_per_image=source.frames_per_image,
            gap_frames=source.gap_frames,
            limit=source.limit,
        )
    if source.kind is SourceKind.OPENCV:
        from app.edge.sources.opencv import OpenCVSource

        assert source.uri is not None
        return OpenCVSource(source.uri)
    from app.edge.sources.picamera import Picamera2Source

    return Picamera2Source(width=source.width, height=source.height, fps=source.fps or 10.0)

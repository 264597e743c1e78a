"""A lane whose clock is not synchronised (a Pi without its RTC boots at 1970) stamps nothing:
it holds its sightings, lets the gate decide alone, and stamps them once the clock is right.

The kernel's NTP state is decoded from fabricated ``adjtimex`` results; the agent runs against
``FakeClock`` (1970, then a step to real time) and ``FakeCentral``; one test against the real
central checks that a heartbeat sent from 1970 is taken.
"""

from __future__ import annotations

import ctypes
import errno
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.contract import (
    EARLIEST_CAPTURE,
    CameraDirection,
    EdgeLists,
    GateAction,
    ListedPlate,
    OfflineBasis,
    PassEntry,
    PlateCandidate,
    PlateEvent,
    VehicleType,
)
from app.edge.agent import EdgeRuntime, Lane, LaneAgent, RuntimeSettings
from app.edge.aggregate import ReadAggregator, Sighting
from app.edge.clock import (
    MAXERROR_LIMIT_US,
    STA_CLOCKERR,
    STA_INS,
    STA_PLL,
    STA_UNSYNC,
    TIME_ERROR,
    TIME_INS,
    TIME_OK,
    KernelClockState,
    SystemClock,
    _Timex,
    decode_adjtimex,
    read_kernel_clock,
)
from app.edge.config import ConfigError, OfflineAction, parse_config
from app.edge.gate import GateController, GateOutcome, LoggingRelay, OfflinePolicy
from app.edge.heartbeat import FrameRate
from app.edge.ids import uuid7_time_ms
from app.edge.lists import LocalLists
from app.edge.outbox import Outbox
from app.edge.reader import PlateBox
from app.edge.sources import Frame
from app.edge.uploader import Outcome
from support.waiting import wait_until
from tests.edge.conftest import Central
from tests.edge.fake_central import FakeCentral
from tests.edge.helpers import edge_config

CAMERA = "edge-in"
KEYS = {CAMERA: "key-in"}
BOOT = datetime(1970, 1, 1, 0, 0, 42, tzinfo=UTC)  # what a Pi without network time says
TOLERANCE = timedelta(milliseconds=2)


class FakeClock:
    """A machine's two clocks: wall = offset + monotonic. It boots at 1970, unsynchronised;
    ``sync`` steps the wall clock to ``wall`` and says synchronised, as chrony would."""

    def __init__(self, *, wall: datetime = BOOT, mono: float = 1000.0) -> None:
        self.mono = mono
        self._offset = wall.timestamp() - mono
        self.kernel_synced = False
        self.looks = 0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._offset + self.mono, UTC)

    def monotonic(self) -> float:
        return self.mono

    def synchronised(self) -> bool:
        self.looks += 1
        return self.kernel_synced and self.now() >= EARLIEST_CAPTURE

    def advance(self, seconds: float) -> None:
        self.mono += seconds

    def sync(self, wall: datetime) -> None:
        self._offset = wall.timestamp() - self.mono
        self.kernel_synced = True


# -- the kernel's state ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status", "maxerror_us", "synchronised"),
    [
        # chrony or timesyncd disciplines the clock: STA_UNSYNC cleared, a small error bound.
        (TIME_OK, STA_PLL, 120_000, True),
        # Boot, or a clock set by hand / from fake-hwclock (settimeofday): the kernel's reset.
        (TIME_ERROR, STA_UNSYNC, MAXERROR_LIMIT_US, False),
        (TIME_ERROR, STA_UNSYNC | STA_PLL, MAXERROR_LIMIT_US, False),
        # The daemon went silent until maxerror reached the limit: the kernel flags it itself.
        (TIME_OK, STA_PLL, MAXERROR_LIMIT_US, False),
        # chrony without rtcsync keeps STA_UNSYNC set on Linux but bounds the error.
        (TIME_ERROR, STA_UNSYNC | STA_PLL, 450_000, True),
        # TIME_ERROR without STA_UNSYNC: a PPS fault.
        (TIME_ERROR, STA_PLL, 10_000, False),
        (TIME_OK, STA_PLL | STA_CLOCKERR, 10_000, False),
        # A leap second announced: still synchronised.
        (TIME_INS, STA_PLL | STA_INS, 5_000, True),
    ],
)
def test_the_kernel_state_is_decoded_from_adjtimex_results(
    state: int, status: int, maxerror_us: int, synchronised: bool
) -> None:
    decoded = decode_adjtimex(state, status, maxerror_us, 1_000)
    assert decoded.synchronised is synchronised, decoded.describe()


def test_the_probe_reads_struct_timex_as_adjtimex_fills_it() -> None:
    asked: list[int] = []

    def adjtimex(pointer: Any) -> int:
        timex = ctypes.cast(pointer, ctypes.POINTER(_Timex)).contents
        asked.append(timex.modes)
        timex.status, timex.maxerror, timex.esterror = STA_UNSYNC, MAXERROR_LIMIT_US, 16_000_000
        timex.tai = 37  # a field after the others: the layout holds
        return TIME_ERROR

    state = read_kernel_clock(adjtimex)
    assert asked == [0], "modes 0: a read, never an adjustment"
    assert state == KernelClockState(TIME_ERROR, STA_UNSYNC, MAXERROR_LIMIT_US, 16_000_000)
    assert not state.synchronised
    assert "TIME_ERROR" in state.describe() and "STA_UNSYNC" in state.describe()


def test_a_refused_adjtimex_raises_with_its_errno() -> None:
    def refused(pointer: Any) -> int:
        ctypes.set_errno(errno.EPERM)  # what a seccomp filter (ProtectClock=yes) answers
        return -1

    with pytest.raises(OSError, match="adjtimex") as raised:
        read_kernel_clock(refused)
    assert raised.value.errno == errno.EPERM


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux only")
def test_the_probe_reads_this_machines_kernel() -> None:
    try:
        state = read_kernel_clock()
    except OSError as exc:  # a sandbox that refuses the call: the agent falls back to the floor
        pytest.skip(f"adjtimex refused here: {exc}")
    print(f"adjtimex on this machine: {state.describe()} -> synchronised={state.synchronised}")
    assert 0 <= state.state <= TIME_ERROR
    assert state.maxerror_us >= 0


# -- SystemClock -------------------------------------------------------------------------------


def kernel_says(*states: KernelClockState) -> Any:
    answers = list(states)

    def probe() -> KernelClockState:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return probe


SYNCED = decode_adjtimex(TIME_OK, STA_PLL, 20_000, 1_000)
UNSYNCED = decode_adjtimex(TIME_ERROR, STA_UNSYNC, MAXERROR_LIMIT_US, MAXERROR_LIMIT_US)
NOW_S = datetime.now(UTC).timestamp()


def test_floor_trusts_any_time_from_2024_on_and_nothing_before() -> None:
    assert not SystemClock("floor", wall=lambda: 42.0).synchronised()
    assert not SystemClock("floor", wall=lambda: EARLIEST_CAPTURE.timestamp() - 1).synchronised()
    assert SystemClock("floor", wall=lambda: NOW_S).synchronised()
    assert SystemClock().require_sync == "floor", "the default"


def test_kernel_needs_the_kernels_word_and_then_keeps_trusting_the_clock() -> None:
    clock = SystemClock("kernel", probe=kernel_says(UNSYNCED, SYNCED, UNSYNCED), wall=lambda: NOW_S)
    assert not clock.synchronised(), "a stale but plausible time: not until NTP says so"
    assert clock.synchronised()
    assert clock.synchronised(), "once synchronised, a later lapse of NTP holds nothing back"


def test_kernel_never_trusts_a_clock_before_the_floor() -> None:
    wall = [42.0]
    clock = SystemClock("kernel", probe=kernel_says(SYNCED), wall=lambda: wall[0])
    assert not clock.synchronised()
    wall[0] = NOW_S
    assert clock.synchronised()
    wall[0] = 42.0
    assert not clock.synchronised(), "stepped back to 1970"


def test_kernel_state_unreadable_falls_back_to_the_floor_and_says_so() -> None:
    def refused() -> KernelClockState:
        raise OSError(errno.EPERM, "Operation not permitted")

    clock = SystemClock("kernel", probe=refused, wall=lambda: NOW_S)
    assert clock.synchronised()
    assert clock.problem is not None and "unreadable" in clock.problem
    assert not SystemClock("kernel", probe=refused, wall=lambda: 42.0).synchronised()


def test_none_trusts_the_wall_clock_as_it_is() -> None:
    assert SystemClock("none", probe=kernel_says(UNSYNCED), wall=lambda: 42.0).synchronised()


def test_the_clock_section_of_the_config() -> None:
    base = edge_config(camera={"id": CAMERA})
    default = parse_config(base)
    assert (default.clock.require_sync, default.clock.max_held) == ("floor", 200)
    config = parse_config(base | {"clock": {"require_sync": "kernel", "max_held": 5}})
    assert (config.clock.require_sync, config.clock.max_held) == ("kernel", 5)
    with pytest.raises(ConfigError, match=r"clock\.require_sync"):
        parse_config(base | {"clock": {"require_sync": "off"}})
    with pytest.raises(ConfigError, match=r"clock\.max_held"):
        parse_config(base | {"clock": {"max_held": 0}})


# -- the agent with a clock at 1970 ------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeCentral]:
    central = FakeCentral(KEYS)
    yield central
    central.close()


def runtime_for(
    url: str, data_dir: Path, clock: FakeClock, *, max_held: int = 200, key: str = KEYS[CAMERA]
) -> EdgeRuntime:
    settings = RuntimeSettings(
        central_url=url,
        data_dir=data_dir,
        heartbeat_interval_s=3600,
        backoff_base_s=0.05,
        backoff_cap_s=0.2,
        commands_enabled=False,
        clock_max_held=max_held,
    )
    lane = Lane(CAMERA, CameraDirection.ENTRY, key)
    return EdgeRuntime.build(settings, [lane], clock=clock)


def sight(runtime: EdgeRuntime, clock: FakeClock, plate: str) -> object:
    return runtime.sight(
        runtime.lanes[0],
        captured_mono=clock.monotonic(),
        captured_wall=clock.now(),
        plate=plate,
        confidence=0.9,
        candidates=[PlateCandidate(plate=plate, confidence=0.9)],
        vehicle_type=VehicleType.CAR,
        snapshot=None,
    )


def sample(runtime: EdgeRuntime, name: str, labels: dict[str, str] | None = None) -> float | None:
    return runtime.metrics.registry.get_sample_value(name, labels or {})


def test_no_event_leaves_before_sync_then_each_is_stamped_from_its_monotonic_instant_in_order(
    fake: FakeCentral, tmp_path: Path
) -> None:
    clock = FakeClock()
    runtime = runtime_for(fake.url, tmp_path, clock)
    runtime.hold.poll_s = 0.05
    runtime.start()
    try:
        plates, instants = ["51F-100.01", "51F-100.02", "51F-100.03"], []
        for step, plate in zip((0.0, 12.5, 17.25), plates, strict=True):
            clock.advance(step)
            instants.append(clock.monotonic())
            assert sight(runtime, clock, plate) is None, "held, not stamped"
        looks = clock.looks
        wait_until(lambda: clock.looks > looks + 3, timeout=5, what="the hold to look again")
        runtime.heartbeats.send_once()
        assert fake.events == [], "no event leaves before the clock is synchronised"
        assert runtime.outbox.stats().depth == 0 and runtime.hold.held == 3
        assert sample(runtime, "parking_edge_clock_synchronised") == 0.0
        assert sample(runtime, "parking_edge_sightings_held") == 3.0
        # The heartbeat says why (no contract field for it), stamped 1970 and still taken.
        beat = fake.heartbeats[-1]
        assert beat.last_error == "clock not synchronised; 3 sightings held"
        assert beat.sent_at.year == 1970 and beat.captured_total == 0

        clock.advance(40.0)
        synced_wall, synced_mono = datetime.now(UTC).replace(microsecond=0), clock.monotonic()
        clock.sync(synced_wall)
        wait_until(lambda: len(fake.events) == 3, timeout=10, what="the held events at central")
        assert [e.plate for e in fake.events] == plates, "in capture order"
        for event, instant in zip(fake.events, instants, strict=True):
            expected = synced_wall - timedelta(seconds=synced_mono - instant)
            assert abs(event.captured_at - expected) <= TOLERANCE, (event.captured_at, expected)
        gaps = [b.captured_at - a.captured_at for a, b in pairwise(fake.events)]
        assert [round(g.total_seconds(), 3) for g in gaps] == [12.5, 17.25]
        ids = [uuid7_time_ms(e.event_id) for e in fake.events]
        assert ids == sorted(ids) and ids[0] == int(fake.events[0].captured_at.timestamp() * 1000)
        assert sample(runtime, "parking_edge_clock_synchronised") == 1.0
        assert sample(runtime, "parking_edge_sightings_held") == 0.0

        # From now on a sighting is stamped with its frame's own wall time.
        clock.advance(3.0)
        live = sight(runtime, clock, "51F-100.04")
        assert live is not None
        wait_until(lambda: len(fake.events) == 4, timeout=10, what="the live event")
        assert fake.events[3].captured_at == clock.now()
        runtime.heartbeats.send_once()
        assert fake.heartbeats[-1].last_error is None
        assert fake.heartbeats[-1].captured_total == 4
    finally:
        runtime.close()


def test_a_frame_taken_before_the_sync_is_not_stamped_with_its_1970_wall_time(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    runtime = runtime_for("http://127.0.0.1:9", tmp_path, clock)
    try:
        frame_mono, frame_wall = clock.monotonic(), clock.now()
        clock.advance(2.0)
        wall = datetime.now(UTC)
        clock.sync(wall)
        made = runtime.sight(
            runtime.lanes[0],
            captured_mono=frame_mono,
            captured_wall=frame_wall,
            plate="51F-200.01",
            confidence=0.9,
            candidates=[],
            vehicle_type=VehicleType.CAR,
            snapshot=None,
        )
        assert made is not None, "the clock is synchronised by the time the sighting is ready"
        assert abs(made[0].captured_at - (wall - timedelta(seconds=2))) <= TOLERANCE
    finally:
        runtime.close()


def test_beyond_the_bound_the_oldest_held_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = FakeClock()
    runtime = runtime_for("http://127.0.0.1:9", tmp_path, clock, max_held=3)
    try:
        plates = [f"51F-300.0{i}" for i in range(5)]
        for plate in plates:
            clock.advance(1.0)
            assert sight(runtime, clock, plate) is None
        assert runtime.hold.held == 3
        assert runtime.hold.dropped_total == 2
        labels = {"camera": CAMERA}
        assert sample(runtime, "parking_edge_sightings_dropped_total", labels) == 2.0
        stats = runtime.outbox.stats()
        assert (stats.depth, stats.held_dropped_total, stats.captured_total) == (0, 2, 2), (
            "dropped sightings count as captured: central's reconciliation shows the gap"
        )
        assert runtime.status_text() == (
            "clock not synchronised; 3 sightings held (2 dropped: more than 3)"
        )
        clock.sync(datetime.now(UTC))
        assert runtime.hold.poll() == 3
        pending = runtime.outbox.pending(CAMERA, limit=10)
        events = [PlateEvent.model_validate_json(p.payload) for p in pending]
        assert [e.plate for e in events] == plates[2:], "the newest three, in order"
        assert runtime.outbox.stats().captured_total == 5
    finally:
        runtime.close()


def test_sightings_still_held_at_stop_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = FakeClock()
    runtime = runtime_for("http://127.0.0.1:9", tmp_path, clock)
    sight(runtime, clock, "51F-400.01")
    sight(runtime, clock, "51F-400.02")
    runtime.close()
    assert runtime.hold.dropped_total == 2
    with Outbox(tmp_path / "outbox") as reopened:
        stats = reopened.stats(CAMERA)
    assert (stats.held_dropped_total, stats.captured_total, stats.depth) == (2, 2, 0)


def test_none_stamps_with_the_wall_clock_as_it_is_and_refuses_a_1970_event(
    tmp_path: Path,
) -> None:
    settings = RuntimeSettings(
        central_url="http://127.0.0.1:9",
        data_dir=tmp_path,
        heartbeat_interval_s=3600,
        commands_enabled=False,
        clock_require_sync="none",
    )
    lane = Lane(CAMERA, CameraDirection.ENTRY, KEYS[CAMERA])
    runtime = EdgeRuntime.build(settings, [lane], clock=SystemClock("none", wall=lambda: 42.0))
    try:
        made = runtime.sight(
            lane,
            captured_mono=1.0,
            captured_wall=datetime.fromtimestamp(42.0, UTC),
            plate="51F-700.01",
            confidence=0.9,
            candidates=[],
            vehicle_type=VehicleType.CAR,
            snapshot=None,
        )
        assert made is None, "the contract refuses 1970 at the edge: no event, and no crash"
        stats = runtime.outbox.stats()
        assert (stats.depth, stats.refused_total, stats.captured_total) == (0, 1, 1)
        labels = {"camera": CAMERA}
        assert sample(runtime, "parking_edge_events_refused_total", labels) == 1.0
    finally:
        runtime.close()


# -- the gate while the clock is unsynchronised ------------------------------------------------


class NoSource:
    def frames(self) -> Iterator[Frame]:
        return iter(())

    def close(self) -> None:
        pass


class NoReader:
    def read(self, frame: Frame) -> list[Any]:
        return []


def sighting_at(clock: FakeClock, plate: str) -> Sighting:
    frame = Frame(
        image=np.full((60, 160, 3), 128, dtype=np.uint8),
        captured_at=clock.now(),
        monotonic_s=clock.monotonic(),
        index=0,
    )
    return Sighting(
        plate=plate,
        confidence=0.95,
        candidates=[PlateCandidate(plate=plate, confidence=0.95)],
        vehicle_type=VehicleType.CAR,
        captured_at=frame.captured_at,
        frame=frame,
        box=PlateBox(0, 0, 10, 10),
        support=3,
        complete=True,
    )


def test_the_gate_decides_offline_at_once_while_unsynchronised_and_records_it_at_sync(
    fake: FakeCentral, tmp_path: Path
) -> None:
    fake.decision = GateAction.DENY  # central would say no: the gate must not have asked it
    clock = FakeClock()
    runtime = runtime_for(fake.url, tmp_path, clock)
    runtime.hold.poll_s = 0.05
    real_now = datetime.now(UTC)
    lists = LocalLists(tmp_path / "lists")
    lists.replace(
        EdgeLists(
            lot_id="lot",
            camera_id=CAMERA,
            generated_at=real_now - timedelta(hours=1),
            deny=[ListedPlate(plate_normalized="51F50001")],
            passes=[
                PassEntry(
                    plate_normalized="51F50002",
                    valid_from=real_now - timedelta(days=1),
                    valid_until=real_now + timedelta(days=30),
                )
            ],
        ),
        '"v1"',
    )
    relay, recorded = LoggingRelay(), list[GateOutcome]()
    gate = GateController(
        relay,
        direction=CameraDirection.ENTRY,
        deadline_s=5.0,  # central's answer would take its time: the held path never waits
        open_pulse_s=1.0,
        policy=OfflinePolicy(OfflineAction.OPEN, OfflineAction.OPEN),
        record=recorded.append,
        lists=lists,
        monotonic=clock.monotonic,
    )
    agent = LaneAgent(
        runtime,
        runtime.lanes[0],
        NoSource(),
        NoReader(),
        ReadAggregator(),
        gate,
        frame_rate=FrameRate(),
    )
    runtime.start()
    try:
        decided_at: list[float] = []
        outcomes: list[GateOutcome] = []
        for plate in ("51F-500.01", "51F-500.02", "30A-500.03"):
            clock.advance(5.0)
            decided_at.append(clock.monotonic())
            assert agent.emit(sighting_at(clock, plate)) is None
            # The barrier waits for nothing: this sighting's decision is taken at once.
            outcomes.append(agent.gate_outcomes[-1].result(timeout=2))
        assert [(o.action, o.basis) for o in outcomes] == [
            (GateAction.DENY, OfflineBasis.DENY_LIST),
            # The wall clock says 1970; the lists' date stands in for it: the pass is valid.
            (GateAction.OPEN, OfflineBasis.SUBSCRIPTION),
            (GateAction.OPEN, OfflineBasis.POLICY),
        ]
        assert all(o.offline for o in outcomes)
        assert len(relay.pulses) == 2
        assert all(cause.startswith("held:") for cause in relay.causes)
        assert recorded == [], "no event id and no trustworthy time yet: recorded at sync"
        assert fake.events == []

        clock.advance(20.0)
        synced_wall, synced_mono = datetime.now(UTC).replace(microsecond=0), clock.monotonic()
        clock.sync(synced_wall)
        wait_until(lambda: len(recorded) == 3, timeout=5, what="the decisions recorded")
        wait_until(lambda: len(fake.events) == 3, timeout=10, what="the events at central")
        assert [o.event_id for o in recorded] == [e.event_id for e in fake.events]
        for outcome, instant in zip(recorded, decided_at, strict=True):
            assert outcome.decided_at is not None
            expected = synced_wall - timedelta(seconds=synced_mono - instant)
            assert abs(outcome.decided_at - expected) <= TOLERANCE
        for event, instant in zip(fake.events, decided_at, strict=True):
            expected = synced_wall - timedelta(seconds=synced_mono - instant)
            assert abs(event.captured_at - expected) <= TOLERANCE
        # Central's DENY for those events (long after the vehicles passed) moves nothing.
        assert len(relay.pulses) == 2
    finally:
        agent.close()


def test_central_takes_a_heartbeat_sent_from_1970(central: Central, tmp_path: Path) -> None:
    clock = FakeClock()
    runtime = runtime_for(central.url, tmp_path, clock, key=central.keys[CAMERA])
    try:
        sight(runtime, clock, "51F-600.01")
        source = runtime.heartbeats._sources[0]
        beat = source.build(clock.now(), clock.monotonic())
        assert beat.sent_at.year == 1970
        result = runtime.uploader.heartbeat(CAMERA, beat)
        assert result is not None and result.outcome is Outcome.DELIVERED, result
        assert beat.last_error == "clock not synchronised; 1 sighting held"
    finally:
        runtime.close()

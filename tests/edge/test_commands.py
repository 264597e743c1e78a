"""The lane's command channel: long poll, on-disk journal, at-most-once pulses, acks, stop.

Against ``FakeCentral`` (tests/edge/fake_central.py), a real HTTP server in a thread with the
routes central promises, since central's own do not exist in every checkout yet.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from app.contract import (
    CameraDirection,
    CommandOutcome,
    EventAck,
    GateAction,
    GateDecision,
    GateReason,
)
from app.edge.agent import EdgeRuntime, Lane, RuntimeSettings, Simulator, open_relay
from app.edge.commands import (
    RESTART_DETAIL,
    AckState,
    CommandJournal,
    CommandListener,
    CommandState,
)
from app.edge.config import ConfigError, parse_config
from app.edge.gate import (
    FileRelay,
    GateController,
    GateOutcome,
    LoggingRelay,
    OfflinePolicy,
    read_relay_file,
)
from app.edge.metrics import EdgeMetrics
from support.waiting import wait_until
from tests.edge.conftest import BIN, NotifySocket, free_port
from tests.edge.fake_central import FakeCentral
from tests.edge.helpers import edge_config, write_edge_toml

LANE = "lane-a"
KEYS = {LANE: "key-a", "lane-b": "key-b"}


class Recorder:
    """A relay that remembers each pulse's cause and monotonic time; ``fail`` makes it raise."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.pulses: list[tuple[str, float]] = []
        self.fail: Exception | None = None
        self.closed = False
        self._clock = clock
        self._cond = threading.Condition()

    def pulse(self, seconds: float, *, cause: str = "") -> None:
        if self.fail is not None:
            raise self.fail
        with self._cond:
            self.pulses.append((cause, self._clock()))
            self._cond.notify_all()

    def close(self) -> None:
        self.closed = True

    def causes(self) -> list[str]:
        with self._cond:
            return [cause for cause, _ in self.pulses]

    def count(self, command_id: UUID) -> int:
        return self.causes().count(f"command:{command_id}")

    def wait_for(self, cause: str, timeout: float = 5.0) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for seen, at in self.pulses:
                    if seen == cause:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no pulse {cause!r}; saw {self.pulses}")
                self._cond.wait(left)


@pytest.fixture
def central() -> Iterator[FakeCentral]:
    fake = FakeCentral(KEYS)
    yield fake
    fake.close()


def listener(
    central: FakeCentral,
    relay: Any,
    journal: CommandJournal,
    *,
    camera_id: str = LANE,
    wait_s: int = 5,
    metrics: EdgeMetrics | None = None,
) -> CommandListener:
    return CommandListener(
        central.url,
        camera_id,
        KEYS[camera_id],
        relay,
        journal,
        open_pulse_s=0.5,
        wait_s=wait_s,
        retry_cap_s=0.5,
        retry_base_s=0.05,
        read_timeout_s=5.0,
        metrics=metrics,
        rng=random.Random(1),
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[CommandJournal]:
    opened = CommandJournal(tmp_path / "commands")
    yield opened
    opened.close()


def sample(metrics: EdgeMetrics, name: str, **labels: str) -> float | None:
    if name.endswith("_total") or name.endswith("_up"):
        labels = {"camera": LANE, **labels}
    return metrics.registry.get_sample_value(name, labels)


def acked_outcome(central: FakeCentral, command_id: UUID, timeout: float = 5.0) -> CommandOutcome:
    wait_until(lambda: central.acked(command_id), timeout=timeout, what=f"the ack of {command_id}")
    ack = central.acked(command_id)
    assert ack is not None
    return ack.outcome


# -- at most once ------------------------------------------------------------------------------


def test_a_command_reoffered_many_times_and_across_a_restart_pulses_exactly_once(
    central: FakeCentral, tmp_path: Path
) -> None:
    central.keep_offering = True  # a central that lost every ack: offers it on every poll
    relay = Recorder()
    journal = CommandJournal(tmp_path / "commands")
    first = listener(central, relay, journal)
    first.start()
    command_id = central.command(LANE, ttl_s=30)
    try:
        relay.wait_for(f"command:{command_id}")
        wait_until(lambda: central.offers(command_id) >= 10, timeout=15, what="10 offers")
    finally:
        first.stop()
        journal.close()

    # The agent restarts (same journal on disk) while central still offers the command.
    journal = CommandJournal(tmp_path / "commands")
    second = listener(central, relay, journal)
    offers = central.offers(command_id)
    second.start()
    try:
        wait_until(lambda: central.offers(command_id) >= offers + 5, timeout=15, what="re-offers")
    finally:
        second.stop()
    assert relay.count(command_id) == 1, relay.pulses
    entry = journal.get(command_id)
    assert entry is not None and entry.state is CommandState.PULSED
    assert {ack.outcome for known, ack in central.acks if known == command_id} == {
        CommandOutcome.PULSED
    }, "every re-offer got the same outcome back"
    journal.close()


def test_a_command_with_no_time_left_is_acked_expired_and_nothing_moves(
    central: FakeCentral, journal: CommandJournal
) -> None:
    relay = Recorder()
    metrics = EdgeMetrics()
    agent = listener(central, relay, journal, metrics=metrics)
    agent.start()
    try:
        command_id = central.command(LANE, ttl_ms=0)
        assert acked_outcome(central, command_id) is CommandOutcome.EXPIRED
    finally:
        agent.stop()
    assert relay.pulses == []
    entry = journal.get(command_id)
    assert entry is not None and entry.state is CommandState.EXPIRED
    assert sample(metrics, "parking_edge_commands_total", outcome="expired") == 1


class SlowJournal(CommandJournal):
    """A journal whose ``executing`` write takes longer than a command's time to live."""

    delay_s = 0.3

    def begin(
        self, command_id: UUID, camera_id: str, *, operator: str = "", reason: str = ""
    ) -> bool:
        written = super().begin(command_id, camera_id, operator=operator, reason=reason)
        time.sleep(self.delay_s)
        return written


def test_a_command_whose_time_runs_out_before_the_pulse_never_pulses(
    central: FakeCentral, tmp_path: Path
) -> None:
    relay = Recorder()
    journal = SlowJournal(tmp_path / "commands")
    agent = listener(central, relay, journal)
    agent.start()
    try:
        command_id = central.command(LANE, ttl_ms=100)
        assert acked_outcome(central, command_id) is CommandOutcome.EXPIRED
    finally:
        agent.stop()
        journal.close()
    assert relay.pulses == []
    ack = central.acked(command_id)
    assert ack is not None and "before the pulse" in ack.detail


def test_the_deadline_is_counted_from_ttl_ms_never_from_centrals_wall_clock(
    central: FakeCentral, journal: CommandJournal
) -> None:
    relay = Recorder()
    agent = listener(central, relay, journal)
    agent.start()
    try:
        # Central's clock (or ours) is a day off: expires_at is long past, ttl_ms says 10 s.
        command_id = central.command(LANE, ttl_s=10, wall_clock_offset=timedelta(days=-1))
        assert acked_outcome(central, command_id) is CommandOutcome.PULSED
    finally:
        agent.stop()
    assert relay.count(command_id) == 1


def test_a_row_left_executing_by_a_crash_is_acked_failed_and_never_pulsed(
    central: FakeCentral, tmp_path: Path
) -> None:
    command_id = central.command(LANE, ttl_s=30)
    crashed = CommandJournal(tmp_path / "commands")
    assert crashed.begin(command_id, LANE, operator="cashier-1")
    power_cut(crashed)

    journal = CommandJournal(tmp_path / "commands")
    assert journal.recovered == [command_id]
    relay = Recorder()
    agent = listener(central, relay, journal)
    agent.start()
    central.keep_offering = True  # and central keeps offering it
    try:
        assert acked_outcome(central, command_id) is CommandOutcome.FAILED
        wait_until(lambda: central.offers(command_id) >= 3, timeout=10, what="more offers")
    finally:
        agent.stop()
        journal.close()
    ack = central.acked(command_id)
    assert ack is not None and ack.detail == RESTART_DETAIL
    assert relay.pulses == []


def test_a_lost_ack_is_sent_again(central: FakeCentral, journal: CommandJournal) -> None:
    central.ack_faults = [503]
    relay = Recorder()
    agent = listener(central, relay, journal)
    agent.start()
    try:
        command_id = central.command(LANE, ttl_s=30)
        assert acked_outcome(central, command_id) is CommandOutcome.PULSED
    finally:
        agent.stop()
    assert [s for known, s in central.ack_statuses if known == command_id] == [503, 200]
    assert relay.count(command_id) == 1
    entry = journal.get(command_id)
    assert entry is not None and entry.acked == AckState.ACKED


def test_an_ack_refused_with_a_4xx_is_dropped_not_retried(
    central: FakeCentral, journal: CommandJournal
) -> None:
    central.ack_faults = [422]
    relay = Recorder()
    agent = listener(central, relay, journal)
    agent.start()
    try:
        command_id = central.command(LANE, ttl_s=1)
        relay.wait_for(f"command:{command_id}")
        wait_until(
            lambda: (e := journal.get(command_id)) is not None and e.acked == AckState.DROPPED,
            timeout=5,
            what="the ack to be dropped",
        )
        time.sleep(1.5)  # past the command's expiry: central stops offering it
    finally:
        agent.stop()
    assert [s for known, s in central.ack_statuses if known == command_id] == [422]
    assert relay.count(command_id) == 1


def test_a_failing_relay_is_acked_failed_with_the_error_and_not_tried_again(
    central: FakeCentral, journal: CommandJournal
) -> None:
    relay = Recorder()
    relay.fail = OSError("gpiochip busy")
    central.keep_offering = True
    agent = listener(central, relay, journal)
    agent.start()
    try:
        command_id = central.command(LANE, ttl_s=30)
        assert acked_outcome(central, command_id) is CommandOutcome.FAILED
        relay.fail = None  # the relay works again: the failed command still is not repeated
        wait_until(lambda: central.offers(command_id) >= 3, timeout=10, what="more offers")
    finally:
        agent.stop()
    ack = central.acked(command_id)
    assert ack is not None and "gpiochip busy" in ack.detail
    assert relay.pulses == []


def test_commands_for_another_lane_or_of_an_unknown_kind_are_refused_unexecuted(
    central: FakeCentral, journal: CommandJournal
) -> None:
    relay = Recorder()
    agent = listener(central, relay, journal)
    other = central.command(LANE, ttl_s=30)
    central.commands[other].camera_id = "lane-b"  # mis-routed by central: answers come to us
    unknown = central.command(LANE, ttl_s=30, kind="self-destruct")
    with central._cond:
        mixed = [central.commands[unknown].wire(time.monotonic())]
        mixed.append(central.commands[other].wire(time.monotonic()))
    try:
        results = agent.handle(mixed, time.monotonic())
    finally:
        agent.stop()
    assert [r.outcome for r in results] == [CommandOutcome.FAILED, CommandOutcome.FAILED]
    assert relay.pulses == []
    states = {e.command_id: (e.state, e.detail) for e in journal.entries()}
    assert states[unknown][0] is CommandState.FAILED and "unreadable" in states[unknown][1]
    assert states[other][0] is CommandState.FAILED and "lane-b" in states[other][1]


# -- latency, stop, failures ---------------------------------------------------------------------


def test_a_command_queued_during_an_open_poll_reaches_the_relay_at_once(
    central: FakeCentral, journal: CommandJournal
) -> None:
    relay = Recorder()
    metrics = EdgeMetrics()
    agent = listener(central, relay, journal, wait_s=20, metrics=metrics)
    agent.start()
    latencies = []
    try:
        for _ in range(5):
            central.wait_for_open_poll()
            queued = time.monotonic()
            command_id = central.command(LANE, ttl_s=10)
            latencies.append(relay.wait_for(f"command:{command_id}") - queued)
            acked_outcome(central, command_id)
    finally:
        agent.stop()
    assert max(latencies) < 0.5, latencies
    assert sample(metrics, "parking_edge_command_latency_seconds_count") == 5
    assert sample(metrics, "parking_edge_commands_total", outcome="pulsed") == 5


def test_stop_returns_quickly_during_an_open_poll_and_later_commands_are_not_executed(
    central: FakeCentral, journal: CommandJournal
) -> None:
    relay = Recorder()
    agent = listener(central, relay, journal, wait_s=30)
    agent.start()
    central.wait_for_open_poll()
    started = time.monotonic()
    agent.stop()
    took = time.monotonic() - started
    assert took < 1.0, f"stop took {took:.2f}s"
    assert not agent.running
    command_id = central.command(LANE, ttl_s=30)
    with central._cond:
        offered = [central.commands[command_id].wire(time.monotonic())]
    assert agent.handle(offered, time.monotonic()) == []
    assert relay.pulses == []
    assert journal.get(command_id) is None, "left to central: a restarted agent may still act"


def test_the_channel_is_reported_up_within_a_second_or_two_of_the_start(
    central: FakeCentral, journal: CommandJournal
) -> None:
    metrics = EdgeMetrics()
    agent = listener(central, Recorder(), journal, wait_s=20, metrics=metrics)
    started = time.monotonic()
    agent.start()
    try:
        wait_until(
            lambda: sample(metrics, "parking_edge_command_channel_up") == 1,
            timeout=5,
            what="the channel to be up",
        )
        took = time.monotonic() - started
        wait_until(lambda: central.polls >= 2, timeout=5, what="the second poll")
        central.wait_for_open_poll()
    finally:
        agent.stop()
    assert took < 2.5, f"up after {took:.1f}s: the first poll should be short"
    assert sample(metrics, "parking_edge_command_channel_up") == 0, "down once stopped"


def test_poll_errors_back_off_and_the_channel_recovers(
    central: FakeCentral, journal: CommandJournal
) -> None:
    central.poll_faults = [503, 404, 500]
    relay = Recorder()
    metrics = EdgeMetrics()
    agent = listener(central, relay, journal, metrics=metrics)
    agent.start()
    try:
        command_id = central.command(LANE, ttl_s=30)
        assert acked_outcome(central, command_id) is CommandOutcome.PULSED
    finally:
        agent.stop()
    assert central.poll_statuses[:3] == [503, 404, 500]
    errors = {
        kind: sample(metrics, "parking_edge_command_poll_errors_total", kind=kind)
        for kind in ("http_503", "http_404", "http_500")
    }
    assert errors == {"http_503": 1, "http_404": 1, "http_500": 1}
    assert agent.poll_failures == 3


def test_a_wrong_key_is_refused_and_the_listener_keeps_trying(
    central: FakeCentral, journal: CommandJournal
) -> None:
    relay = Recorder()
    agent = CommandListener(
        central.url, LANE, KEYS["lane-b"], relay, journal, retry_cap_s=0.2, retry_base_s=0.05
    )
    agent.start()
    try:
        wait_until(lambda: agent.poll_failures >= 3, timeout=10, what="three refused polls")
        assert agent.last_error is not None and "http_403" in agent.last_error
    finally:
        agent.stop()
    assert relay.pulses == []


def test_a_central_back_on_the_address_is_polled_again_within_a_second_or_two(
    journal: CommandJournal,
) -> None:
    port = free_port()
    relay = Recorder()
    agent = CommandListener(
        f"http://127.0.0.1:{port}", LANE, KEYS[LANE], relay, journal, rng=random.Random(3)
    )
    agent.start()
    back: FakeCentral | None = None
    try:
        wait_until(lambda: agent.poll_failures >= 1, timeout=5, what="a refused connect")
        # Central comes back on the same address (a failover): the next poll finds it.
        back = FakeCentral(KEYS, port=port)
        came_back = time.monotonic()
        back.wait_for_open_poll(timeout=5)
        assert time.monotonic() - came_back < 2.0
    finally:
        agent.stop()
        if back is not None:
            back.close()


# -- property: interleavings of offers, restarts, crashes, slow writes (hypothesis) ------------


def power_cut(journal: CommandJournal) -> None:
    """The process dies: the connection goes without another write (no checkpoint)."""
    connection = journal._db
    assert connection is not None
    connection.close()
    journal._db = None


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the agent catches it)."""


class Violation(BaseException):
    """The property is broken (raised through the agent, which catches Exception)."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ModelJournal(CommandJournal):
    """Writes that take a drawn time on the fake clock, and may die right after ``executing``."""

    clock: FakeClock
    draw: Callable[[st.SearchStrategy[Any]], Any]
    crash_after_begin = False

    def begin(
        self, command_id: UUID, camera_id: str, *, operator: str = "", reason: str = ""
    ) -> bool:
        written = super().begin(command_id, camera_id, operator=operator, reason=reason)
        self.clock.now += self.draw(st.sampled_from([0.0, 0.001, 0.05, 0.4]))
        if self.crash_after_begin:
            self.crash_after_begin = False
            raise Crash
        return written


class ModelRelay:
    """Checks the write-ahead rule at each pulse; may die right after the pulse."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.journal: CommandJournal | None = None
        self.pulses: list[tuple[str, float]] = []
        self.crash_after_pulse = False

    def pulse(self, seconds: float, *, cause: str = "") -> None:
        assert self.journal is not None
        entry = self.journal.get(UUID(cause.removeprefix("command:")))
        if entry is None or entry.state is not CommandState.EXECUTING:
            # Not an AssertionError: the agent catches a relay's exceptions.
            raise Violation(f"{cause}: the relay moved before 'executing' was committed ({entry})")
        self.pulses.append((cause, self.clock()))
        if self.crash_after_pulse:
            self.crash_after_pulse = False
            raise Crash

    def close(self) -> None:
        pass


def _offer(command_id: UUID, expires: float, now: float) -> dict[str, Any]:
    wall = datetime.now(UTC)
    return {
        "command_id": str(command_id),
        "camera_id": LANE,
        "kind": "open",
        "issued_at": wall.isoformat(),
        "expires_at": wall.isoformat(),
        "ttl_ms": max(0, int((expires - now) * 1000)),
        "operator": "model",
        "reason": "",
    }


STEP = st.one_of(
    st.tuples(
        st.just("offer"),
        st.lists(st.integers(0, 3), max_size=6),  # which commands central offers, in order
        st.booleans(),  # the agent dies after committing executing
        st.booleans(),  # the agent dies after the pulse, before its outcome
    ),
    st.tuples(st.just("restart")),
    st.tuples(st.just("tick"), st.sampled_from([0.01, 0.1, 0.3, 1.0])),
)


@settings(
    max_examples=100,
    deadline=None,
    database=None,  # no .hypothesis/ in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ttls=st.lists(st.sampled_from([0.0, 0.01, 0.2, 0.5, 2.0]), min_size=4, max_size=4),
    steps=st.lists(STEP, max_size=30),
    data=st.data(),
)
def test_property_offers_restarts_crashes_and_slow_writes_never_pulse_twice_or_late(
    ttls: list[float], steps: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    """Central offers (again and again, in any order, also past expiry), the agent restarts
    cleanly or dies between its writes, journal writes take time: each command pulses at most
    once, only while it has time left, only after ``executing`` is on disk."""
    clock = FakeClock()
    relay = ModelRelay(clock)
    ids = [uuid4() for _ in ttls]
    expiry = {c: clock.now + ttl for c, ttl in zip(ids, ttls, strict=True)}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)

        def wall() -> float:
            return time.time() + clock.now  # the journal's wall clock (pruning, outcome times)

        def open_listener() -> tuple[ModelJournal, CommandListener]:
            journal = ModelJournal(directory, clock=wall)
            journal.clock, journal.draw = clock, data.draw
            relay.journal = journal
            return journal, CommandListener(
                "http://127.0.0.1:9", LANE, "k", relay, journal, clock=clock
            )

        journal, agent = open_listener()
        for step in steps:
            if step[0] == "offer":
                _, chosen, crash_begin, crash_pulse = step
                now = clock()
                items = [_offer(ids[i], expiry[ids[i]], now) for i in chosen]
                journal.crash_after_begin, relay.crash_after_pulse = crash_begin, crash_pulse
                try:
                    agent.handle(items, now)
                except Crash:
                    power_cut(journal)
                    agent.stop()
                    journal, agent = open_listener()
                journal.crash_after_begin = relay.crash_after_pulse = False
            elif step[0] == "restart":
                agent.stop()
                journal.close()
                journal, agent = open_listener()
            else:
                clock.now += step[1]
        agent.stop()
        journal.close()
        reopened = CommandJournal(directory, clock=wall)  # as the next start finds it
        final = {e.command_id: e for e in reopened.entries()}
        reopened.close()

    note(f"commands {[(str(c)[:8], round(expiry[c] - 1000.0, 3)) for c in ids]}")
    note(f"pulses {[(cause[8:16], round(at - 1000.0, 3)) for cause, at in relay.pulses]}")
    note(f"final {[(str(c)[:8], e.state.value, e.detail) for c, e in final.items()]}")
    pulsed = [cause for cause, _ in relay.pulses]
    assert len(pulsed) == len(set(pulsed)), f"a command pulsed twice: {relay.pulses}"
    for cause, at in relay.pulses:
        command_id = UUID(cause.removeprefix("command:"))
        assert at < expiry[command_id], f"{command_id} pulsed at {at}, after its expiry"
        # Pulsed, or the agent died around the pulse (failed); never "expired".
        assert final[command_id].state in (CommandState.PULSED, CommandState.FAILED)
    assert all(e.state is not CommandState.EXECUTING for e in final.values())
    for command_id, entry in final.items():
        if entry.state is CommandState.PULSED:
            assert f"command:{command_id}" in pulsed, "journaled pulsed but never pulsed"


# -- the journal itself ------------------------------------------------------------------------


def test_the_journal_prunes_old_rows_and_keeps_unfinished_ones(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    journal = CommandJournal(tmp_path, clock=lambda: now[0], keep_days=7)
    old, recent = uuid4(), uuid4()
    journal.record(old, LANE, CommandState.PULSED)
    now[0] += 6 * 86400
    journal.record(recent, LANE, CommandState.EXPIRED)
    now[0] += 2 * 86400
    assert journal.prune() == 1
    assert [e.command_id for e in journal.entries()] == [recent]
    assert not journal.begin(recent, LANE), "a known id is never begun again"
    journal.close()
    journal.close()  # idempotent


# -- relays, gate, config ----------------------------------------------------------------------


def test_file_relay_writes_one_fsynced_json_line_per_pulse_from_many_threads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay" / "pulses.jsonl"
    relay = FileRelay(path, camera_id=LANE)
    other = FileRelay(path)  # a second relay (another lane) on the same file
    before = time.time()

    def pulses(n: int) -> None:
        for i in range(25):
            (relay if n % 2 else other).pulse(1.5, cause=f"t{n}:{i}")

    threads = [threading.Thread(target=pulses, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    relay.close()
    other.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 100
    records = [json.loads(line) for line in lines]
    assert records == read_relay_file(path)
    assert {r["cause"] for r in records} == {f"t{n}:{i}" for n in range(4) for i in range(25)}
    for record in records:
        at = datetime.fromisoformat(record["at"])
        assert at.tzinfo is not None
        assert abs(at.timestamp() - record["unix"]) < 1e-3
        assert before <= record["unix"] <= time.time()
        assert record["seconds"] == 1.5
    assert {r.get("camera") for r in records} == {LANE, None}
    with pytest.raises(RuntimeError, match="closed"):
        relay.pulse(1.0, cause="late")


MINIMAL = edge_config(camera={"id": "lane-a", "direction": "exit"})


def test_config_file_driver_needs_a_record_file_and_commands_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gate: .*driver \"file\" needs record_file"):
        parse_config({**MINIMAL, "gate": {"driver": "file"}})
    with pytest.raises(ConfigError, match=r"commands\.wait_s"):
        parse_config({**MINIMAL, "commands": {"wait_s": 31}})
    with pytest.raises(ConfigError, match=r"commands\.retry_cap_s"):
        parse_config({**MINIMAL, "commands": {"retry_cap_s": 0}})
    defaults = parse_config(MINIMAL)
    assert (defaults.commands.enabled, defaults.commands.wait_s) == (True, 20)
    assert defaults.commands.retry_cap_s == 10.0
    config = parse_config(
        {**MINIMAL, "gate": {"driver": "file", "record_file": str(tmp_path / "r.jsonl")}}
    )
    relay = open_relay(config, "lane-a")
    assert isinstance(relay, FileRelay)
    relay.pulse(1.0, cause="command:x")
    relay.close()
    assert read_relay_file(tmp_path / "r.jsonl")[0]["cause"] == "command:x"


def _ack(event_id: UUID, action: GateAction, reason: GateReason) -> EventAck:
    return EventAck(
        event_id=event_id,
        accepted_at=datetime.now(UTC),
        session_id=3,
        decision=GateDecision(action=action, reason=reason, fee=20000),
    )


def test_hold_keeps_the_barrier_closed_and_is_recorded_like_any_action() -> None:
    relay, record = LoggingRelay(), list[GateOutcome]()
    gate = GateController(
        relay,
        direction=CameraDirection.EXIT,
        deadline_s=2,
        open_pulse_s=1.0,
        policy=OfflinePolicy(),
        record=record.append,
    )
    held, opened = uuid4(), uuid4()
    acks: dict[UUID, Future[EventAck]] = {held: Future(), opened: Future()}
    outcomes = [gate.handle(i, acks[i], lambda: None, "51F-123.45") for i in (held, opened)]
    acks[held].set_result(_ack(held, GateAction.HOLD, GateReason.PAYMENT_REQUIRED))
    acks[opened].set_result(_ack(opened, GateAction.OPEN, GateReason.EXIT_PAID))
    hold, open_ = (o.result(timeout=5) for o in outcomes)
    gate.close()
    assert (hold.action, hold.offline, hold.reason) == (
        GateAction.HOLD,
        False,
        GateReason.PAYMENT_REQUIRED,
    )
    assert open_.action is GateAction.OPEN
    assert relay.pulses == [1.0], "only the paid exit opened"
    assert relay.causes == [f"event:{opened}"]
    assert {o.event_id for o in record} == {held, opened}, "HOLD is recorded too"


# -- wiring: EdgeRuntime, the simulator, the CLI -------------------------------------------------


def settings_for(central: FakeCentral, data_dir: Path, **overrides: Any) -> RuntimeSettings:
    return RuntimeSettings(
        central_url=central.url,
        data_dir=data_dir,
        heartbeat_interval_s=3600,
        commands_wait_s=overrides.pop("commands_wait_s", 20),
        open_pulse_s=0.7,
        **overrides,
    )


def test_the_runtime_runs_a_listener_per_lane_with_a_relay_and_stops_them_fast(
    central: FakeCentral, tmp_path: Path
) -> None:
    lanes = [
        Lane(LANE, CameraDirection.ENTRY, KEYS[LANE]),
        Lane("lane-b", CameraDirection.EXIT, KEYS["lane-b"]),
    ]
    relays = {LANE: Recorder(), "lane-b": Recorder()}
    runtime = EdgeRuntime.build(settings_for(central, tmp_path), lanes, relays=relays)
    assert [li.camera_id for li in runtime.listeners] == [LANE, "lane-b"]
    runtime.start()
    try:
        a, b = central.command(LANE), central.command("lane-b")
        relays[LANE].wait_for(f"command:{a}")
        relays["lane-b"].wait_for(f"command:{b}")
        acked_outcome(central, a)
        acked_outcome(central, b)
        central.wait_for_open_poll()
    finally:
        started = time.monotonic()
        runtime.close()
        took = time.monotonic() - started
    assert took < 3.0, f"close took {took:.2f}s"
    assert relays[LANE].causes() == [f"command:{a}"]
    assert relays["lane-b"].causes() == [f"command:{b}"]
    assert (tmp_path / "commands" / "commands.db").exists()

    off = EdgeRuntime.build(
        settings_for(central, tmp_path / "off", commands_enabled=False), lanes, relays=relays
    )
    assert off.listeners == [] and off.command_journal is None
    off.close()


@pytest.mark.parametrize("decision", [GateAction.OPEN, GateAction.HOLD])
def test_the_simulator_pulses_a_lane_when_centrals_ack_says_open(
    central: FakeCentral, tmp_path: Path, decision: GateAction
) -> None:
    central.decision = decision
    relay = FileRelay(tmp_path / "relay.jsonl", camera_id=LANE)
    runtime = EdgeRuntime.build(
        settings_for(central, tmp_path, commands_enabled=False),
        [Lane(LANE, CameraDirection.ENTRY, KEYS[LANE])],
        relays={LANE: relay},
    )
    simulator = Simulator(runtime, rate=0, rng=random.Random(5), snapshots=False)
    runtime.start()
    try:
        events = [simulator.step() for _ in range(3)]
        wait_until(lambda: sum(simulator.actions.values()) == 3, timeout=10, what="3 decisions")
    finally:
        simulator.close()
        runtime.close()
        relay.close()
    causes = [r["cause"] for r in read_relay_file(tmp_path / "relay.jsonl")]
    if decision is GateAction.OPEN:
        sent = [e for e in events if e is not None]
        assert len(sent) == len(events)
        assert sorted(causes) == sorted(f"event:{e.event_id}" for e in sent)
    else:
        assert causes == [], "a held vehicle waits for the cashier's command"


def _simulate(central: FakeCentral, tmp_path: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "parking-edge"), "simulate",
        "--central", central.url,
        "--entry-camera", LANE, "--entry-key", KEYS[LANE],
        "--rate", "2", "--no-snapshots",
        "--data-dir", str(tmp_path / "edge"),
        "--relay-file", str(tmp_path / "relay.jsonl"),
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_simulate_takes_commands_and_stops_cleanly_on_sigint_as_on_sigterm(
    central: FakeCentral, tmp_path: Path, notify_socket: NotifySocket, sig: signal.Signals
) -> None:
    edge = subprocess.Popen(
        _simulate(central, tmp_path),
        env={**os.environ, "NOTIFY_SOCKET": str(notify_socket.path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        notify_socket.wait_for("READY=1")
        central.wait_for_open_poll()
        command_id = central.command(LANE, ttl_s=10)
        assert acked_outcome(central, command_id, timeout=10) is CommandOutcome.PULSED
        central.wait_for_open_poll()
        started = time.monotonic()
        edge.send_signal(sig)
        _, stderr = edge.communicate(timeout=20)
        took = time.monotonic() - started
    finally:
        if edge.poll() is None:
            edge.kill()
    assert edge.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert f"signal {sig.name}: stopping" in stderr
    assert took < 10, f"stopped in {took:.1f}s"
    causes = [r["cause"] for r in read_relay_file(tmp_path / "relay.jsonl")]
    assert causes.count(f"command:{command_id}") == 1


def test_simulate_without_commands_never_polls(central: FakeCentral, tmp_path: Path) -> None:
    result = subprocess.run(
        [*_simulate(central, tmp_path, "--no-commands"), "--count", "2", "--exit-when-drained"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert central.polls == 0
    assert "no command channel" in result.stderr
    assert len(read_relay_file(tmp_path / "relay.jsonl")) == 2, "both entries opened"


def test_run_pulses_the_gates_own_relay_on_a_command_and_stops_on_sigint(
    central: FakeCentral, tmp_path: Path, plates_dir: Path, notify_socket: NotifySocket
) -> None:
    record = tmp_path / "relay.jsonl"
    config = write_edge_toml(
        tmp_path,
        camera={"id": LANE, "api_key": KEYS[LANE]},
        central={"url": central.url},
        source={"path": plates_dir, "fps": 5, "loop": True, "limit": 2},
        outbox={"dir": tmp_path / "edge"},
        gate={"driver": "file", "record_file": record},
        commands={"wait_s": 10},
        lists={"enabled": False},
        metrics={"enabled": False},
    )
    edge = subprocess.Popen(
        [str(BIN / "parking-edge"), "run", "--config", str(config)],
        env={**os.environ, "NOTIFY_SOCKET": str(notify_socket.path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        notify_socket.wait_for("READY=1", timeout=60)
        central.wait_for_open_poll()
        command_id = central.command(LANE, ttl_s=10)
        assert acked_outcome(central, command_id, timeout=10) is CommandOutcome.PULSED
        wait_until(
            lambda: any(r["cause"].startswith("event:") for r in read_relay_file(record)),
            timeout=30,
            what="the gate to open for a replayed vehicle",
        )
        edge.send_signal(signal.SIGINT)
        _, stderr = edge.communicate(timeout=30)
    finally:
        if edge.poll() is None:
            edge.kill()
    assert edge.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    causes = [r["cause"] for r in read_relay_file(record)]
    assert causes.count(f"command:{command_id}") == 1
    assert any(c.startswith("event:") for c in causes), "the gate's OPENs pulse the same relay"

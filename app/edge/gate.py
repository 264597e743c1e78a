"""The barrier: a relay to pulse, central's decision to follow, local lists when it is silent.

Central's ``GateDecision`` is followed when it arrives within ``deadline_s``. Otherwise the edge
decides alone: from its local copy of the lot's lists (``lists.py``: deny-listed stays closed,
allow-listed or a valid pass opens) and, for a plate on no list, by the configured offline
policy (e.g. entry: open; exit: open and flag for review). The outcome is recorded before the
relay moves (``record``), logged and counted. ``HOLD`` (a known vehicle whose fee is still due)
keeps the barrier closed like ``DENY``; a cashier's payment then opens it through the lane's
command channel (``commands.py``).

While the wall clock is not synchronised (``clock.py``) no event can be made, so there is
nothing to ask central about: ``decide_alone`` decides at once from the lists and the policy, the
relay moves, and the outcome is recorded (``record``) with its event id and decision time once the
held sighting is stamped (``hold.py``).

Every pulse carries its ``cause`` (``event:<event_id>`` for a decision, ``command:<command_id>``
for an operator's command, ``held:<token>`` for a sighting held for the clock), which the relays
log and ``FileRelay`` records.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from app.contract import CameraDirection, EventAck, GateAction, GateReason, OfflineBasis
from app.edge.config import OfflineAction
from app.edge.lists import LocalLists

log = logging.getLogger(__name__)


class Relay(Protocol):
    def pulse(self, seconds: float, *, cause: str = "") -> None:
        """Close the relay for ``seconds`` (the barrier controller opens, then closes itself).

        ``cause`` says why (``event:<id>``, ``command:<id>``). Safe to call from any thread;
        raises when the relay could not be driven."""
        ...

    def close(self) -> None: ...


class RelayError(RuntimeError):
    """The relay could not be driven (closed, or its device failed)."""


class LoggingRelay:
    """The relay for machines without GPIO: it logs what the barrier would have done."""

    def __init__(self) -> None:
        self.pulses: list[float] = []
        self.causes: list[str] = []
        self._lock = threading.Lock()

    def pulse(self, seconds: float, *, cause: str = "") -> None:
        with self._lock:
            self.pulses.append(seconds)
            self.causes.append(cause)
        log.info(
            "gate: relay pulse %.1fs (logging driver)%s", seconds, f" {cause}" if cause else ""
        )

    def close(self) -> None:
        pass


class FileRelay:
    """A recording relay for machines without GPIO (tests, the demo, benches).

    Each pulse appends one JSON line to ``path``, written and fsynced before ``pulse`` returns:
    ``{"at": "<ISO UTC>", "unix": <time.time()>, "seconds": s, "cause": "..."}`` (plus
    ``"camera"`` when one is given, for several lanes sharing one file). The file is opened with
    ``O_APPEND`` and each line goes in one ``write``, so several relays (or processes) can share
    it; pulses of one relay are serialized.
    """

    def __init__(self, path: Path, *, camera_id: str | None = None) -> None:
        self.path = path
        self.camera_id = camera_id
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            _fsync_directory(path.parent)
        self._lock = threading.Lock()
        self.pulses: list[float] = []

    def pulse(self, seconds: float, *, cause: str = "") -> None:
        unix = time.time()
        record: dict[str, object] = {
            "at": datetime.fromtimestamp(unix, UTC).isoformat(),
            "unix": unix,
            "seconds": seconds,
            "cause": cause,
        }
        if self.camera_id is not None:
            record["camera"] = self.camera_id
        line = (json.dumps(record) + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise RelayError(f"file relay {self.path} is closed")
            written = os.write(self._fd, line)
            if written != len(line):
                raise RelayError(f"file relay {self.path}: short write ({written}/{len(line)})")
            os.fsync(self._fd)
            self.pulses.append(seconds)
        log.info("gate: relay pulse %.1fs (file driver)%s", seconds, f" {cause}" if cause else "")

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_relay_file(path: Path) -> list[dict[str, Any]]:
    """The pulses a ``FileRelay`` recorded, oldest first (tests, benches)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class GpioRelay:
    """A relay on a Raspberry Pi GPIO pin via gpiozero, imported only when this is used.

    Pulses may come from two threads (the gate's decisions, the command channel): a pulse that
    starts while one is running extends it to the later end instead of being cut short."""

    def __init__(self, pin: int, *, active_high: bool = True) -> None:
        gpiozero: Any = importlib.import_module("gpiozero")
        self._device: Any = gpiozero.OutputDevice(pin, active_high=active_high, initial_value=False)
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._pulse_no = 0  # a timer releases only the pulse it was started for
        self._closed = False

    def pulse(self, seconds: float, *, cause: str = "") -> None:
        with self._lock:
            if self._closed:
                raise RelayError("gpio relay is closed")
            if self._timer is not None:
                self._timer.cancel()
            self._pulse_no += 1
            self._device.on()
            self._timer = threading.Timer(seconds, self._release, args=(self._pulse_no,))
            self._timer.daemon = True
            self._timer.start()
        log.info("gate: relay pulse %.1fs (gpio)%s", seconds, f" {cause}" if cause else "")

    def _release(self, pulse_no: int) -> None:
        with self._lock:
            if not self._closed and pulse_no == self._pulse_no:
                self._device.off()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            self._device.off()
            self._device.close()


@dataclass(frozen=True, slots=True)
class OfflinePolicy:
    entry: OfflineAction = OfflineAction.OPEN
    exit: OfflineAction = OfflineAction.OPEN
    flag_exit: bool = True

    def decide(self, direction: CameraDirection) -> tuple[GateAction, bool]:
        """The action when central is unreachable, and whether to flag it for review."""
        if direction is CameraDirection.ENTRY:
            return GateAction(self.entry.value), False
        return GateAction(self.exit.value), self.flag_exit


@dataclass(frozen=True, slots=True)
class GateOutcome:
    event_id: UUID
    action: GateAction
    reason: str
    offline: bool
    flagged: bool
    basis: OfflineBasis | None = None  # offline only: what the decision rested on
    plate: str = ""
    decided_at: datetime | None = None
    # decide_alone only: the monotonic instant of the decision (its wall time comes later).
    decided_mono: float | None = None


# The event id of a decision taken before its event could exist (the clock was unsynchronised).
HELD_EVENT_ID = UUID(int=0)


GateRecorder = Callable[[GateOutcome], None]


class GateController:
    """Waits (off the capture loop) for central's ack of each event, then moves the relay."""

    def __init__(
        self,
        relay: Relay,
        *,
        direction: CameraDirection,
        deadline_s: float,
        open_pulse_s: float,
        policy: OfflinePolicy,
        record: GateRecorder,
        lists: LocalLists | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._relay = relay
        self._monotonic = monotonic
        self._lists = lists
        self._direction = direction
        self._deadline_s = deadline_s
        self._open_pulse_s = open_pulse_s
        self._policy = policy
        self._record = record
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gate")

    def handle(
        self,
        event_id: UUID,
        ack: Future[EventAck],
        forget: Callable[[], None],
        plate: str = "",
    ) -> Future[GateOutcome]:
        return self._pool.submit(self._decide, event_id, ack, forget, plate)

    def offline_decision(
        self, event_id: UUID, plate: str, *, at: datetime | None = None
    ) -> GateOutcome:
        """What the gate does alone: the local lists first, then the offline policy."""
        now = at if at is not None else datetime.now(UTC)
        found = self._lists.decide(plate, now) if self._lists is not None and plate else None
        if found is not None:
            # A vehicle kept in at an exit needs a person: flag it like a policy exit.
            flagged = found.action is GateAction.DENY and self._direction is CameraDirection.EXIT
            return GateOutcome(
                event_id, found.action, found.reason, True, flagged, found.basis, plate, now
            )
        action, flagged = self._policy.decide(self._direction)
        return GateOutcome(
            event_id,
            action,
            GateReason.OFFLINE_POLICY,
            True,
            flagged,
            OfflineBasis.POLICY,
            plate,
            now,
        )

    def decide_alone(self, plate: str, *, cause: str) -> Future[GateOutcome]:
        """Decide without central, at once: no event exists yet to ask about (the clock is not
        synchronised). The lists, then the offline policy, as after a missed deadline; the
        relay pulses with ``cause``. Nothing is recorded here: the outcome's event id is
        ``HELD_EVENT_ID`` until the sighting is stamped, then the caller ``record``s it."""
        return self._pool.submit(self._decide_alone, plate, cause)

    def _decide_alone(self, plate: str, cause: str) -> GateOutcome:
        decided_mono = self._monotonic()
        at = datetime.now(UTC)
        current = self._lists.current if self._lists is not None else None
        if current is not None and current.lists.generated_at > at:
            # The wall clock may say 1970: the lists' own date is a lower bound of real time.
            at = current.lists.generated_at
        outcome = replace(
            self.offline_decision(HELD_EVENT_ID, plate, at=at), decided_mono=decided_mono
        )
        log.warning(
            "gate: clock not synchronised, %s (%s) decided alone by %s: %s%s;"
            " recorded once the clock is synchronised",
            cause,
            plate,
            outcome.basis,
            outcome.action,
            " (flagged)" if outcome.flagged else "",
        )
        if outcome.action is GateAction.OPEN:
            try:
                self._relay.pulse(self._open_pulse_s, cause=cause)
            except Exception:
                log.exception("gate: the relay failed to open for %s", cause)
        return outcome

    def record(self, outcome: GateOutcome) -> None:
        """Record a ``decide_alone`` outcome once it has its event id and decision time."""
        try:
            self._record(outcome)
        except Exception:
            log.exception("gate: could not record the action for %s", outcome.event_id)

    def _decide(
        self, event_id: UUID, ack: Future[EventAck], forget: Callable[[], None], plate: str
    ) -> GateOutcome:
        try:
            decision = ack.result(timeout=self._deadline_s).decision
            outcome = GateOutcome(event_id, decision.action, decision.reason, False, False)
        except (FutureTimeout, Exception) as exc:
            forget()
            outcome = self.offline_decision(event_id, plate)
            why = "no answer within deadline" if isinstance(exc, FutureTimeout) else str(exc)
            log.warning(
                "gate: central silent for %s (%s); offline decision by %s: %s%s",
                event_id,
                why,
                outcome.basis,
                outcome.action,
                " (flagged)" if outcome.flagged else "",
            )
        # Recorded first: a decision that moved the barrier is never one nobody hears of.
        try:
            self._record(outcome)
        except Exception:
            log.exception("gate: could not record the action for %s", event_id)
        if outcome.action is GateAction.OPEN:
            try:
                self._relay.pulse(self._open_pulse_s, cause=f"event:{event_id}")
            except Exception:
                log.exception("gate: the relay failed to open for %s", event_id)
        elif outcome.action is GateAction.HOLD:
            # Closed until the fee is paid: the cashier's payment opens it by a lane command.
            log.info("gate: %s held (%s): the barrier stays closed", event_id, outcome.reason)
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._relay.close()

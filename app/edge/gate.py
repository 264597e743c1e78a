"""The barrier: a relay to pulse, central's decision to follow, an offline policy when it is silent.

Central's ``GateDecision`` is followed when it arrives within ``deadline_s``. Otherwise the
configured offline policy acts (e.g. entry: open; exit: open and flag for review) and the action
is recorded in the outbox database (``gate_actions``), logged and counted.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from app.contract import CameraDirection, EventAck, GateAction, GateReason
from app.edge.config import OfflineAction

log = logging.getLogger(__name__)


class Relay(Protocol):
    def pulse(self, seconds: float) -> None:
        """Close the relay for ``seconds`` (the barrier controller opens, then closes itself)."""
        ...

    def close(self) -> None: ...


class LoggingRelay:
    """The relay for machines without GPIO: it logs what the barrier would have done."""

    def __init__(self) -> None:
        self.pulses: list[float] = []

    def pulse(self, seconds: float) -> None:
        self.pulses.append(seconds)
        log.info("gate: relay pulse %.1fs (logging driver)", seconds)

    def close(self) -> None:
        pass


class GpioRelay:
    """A relay on a Raspberry Pi GPIO pin via gpiozero, imported only when this is used."""

    def __init__(self, pin: int, *, active_high: bool = True) -> None:
        gpiozero: Any = importlib.import_module("gpiozero")
        self._device: Any = gpiozero.OutputDevice(pin, active_high=active_high, initial_value=False)
        self._timer: threading.Timer | None = None

    def pulse(self, seconds: float) -> None:
        self._device.on()
        self._timer = threading.Timer(seconds, self._device.off)
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
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
    ) -> None:
        self._relay = relay
        self._direction = direction
        self._deadline_s = deadline_s
        self._open_pulse_s = open_pulse_s
        self._policy = policy
        self._record = record
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gate")

    def handle(
        self, event_id: UUID, ack: Future[EventAck], forget: Callable[[], None]
    ) -> Future[GateOutcome]:
        return self._pool.submit(self._decide, event_id, ack, forget)

    def _decide(
        self, event_id: UUID, ack: Future[EventAck], forget: Callable[[], None]
    ) -> GateOutcome:
        try:
            decision = ack.result(timeout=self._deadline_s).decision
            outcome = GateOutcome(event_id, decision.action, decision.reason, False, False)
        except (FutureTimeout, Exception) as exc:
            forget()
            action, flagged = self._policy.decide(self._direction)
            why = "no answer within deadline" if isinstance(exc, FutureTimeout) else str(exc)
            log.warning(
                "gate: central silent for %s (%s); offline policy: %s%s",
                event_id,
                why,
                action,
                " (flagged)" if flagged else "",
            )
            outcome = GateOutcome(event_id, action, GateReason.OFFLINE_POLICY, True, flagged)
        if outcome.action is GateAction.OPEN:
            self._relay.pulse(self._open_pulse_s)
        try:
            self._record(outcome)
        except Exception:
            log.exception("gate: could not record the action for %s", event_id)
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._relay.close()

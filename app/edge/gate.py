"""The barrier: a relay to pulse, central's decision to follow, local lists when it is silent.

Central's ``GateDecision`` is followed when it arrives within ``deadline_s``. Otherwise the edge
decides alone: from its local copy of the lot's lists (``lists.py``: deny-listed stays closed,
allow-listed or a valid pass opens) and, for a plate on no list, by the configured offline
policy (e.g. entry: open; exit: open and flag for review). The outcome is recorded before the
relay moves (``record``), logged and counted.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from app.contract import CameraDirection, EventAck, GateAction, GateReason, OfflineBasis
from app.edge.config import OfflineAction
from app.edge.lists import LocalLists

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
    basis: OfflineBasis | None = None  # offline only: what the decision rested on
    plate: str = ""
    decided_at: datetime | None = None


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
    ) -> None:
        self._relay = relay
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

    def offline_decision(self, event_id: UUID, plate: str) -> GateOutcome:
        """What the gate does alone: the local lists first, then the offline policy."""
        now = datetime.now(UTC)
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
            self._relay.pulse(self._open_pulse_s)
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._relay.close()

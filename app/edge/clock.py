"""May the wall clock stamp events? A Raspberry Pi has no real-time clock.

A lane that boots without network time runs at 1970, or at the time its last shutdown saved
(``fake-hwclock``, ``systemd-timesyncd``'s clock file): plausible, and wrong by however long it
was off. Central refuses events before ``EARLIEST_CAPTURE`` (and beyond its retention); a stale
but plausible stamp would be charged wrongly. So the agent asks whether the clock is
*synchronised* before it stamps anything (``hold.py`` keeps what it sees meanwhile).

``[clock] require_sync``:

* ``"kernel"``: the kernel's NTP state, read with ``adjtimex(2)`` (modes 0: read only, no
  privilege), and the wall clock at or after ``EARLIEST_CAPTURE``. A lane under the Ansible role
  uses this: chrony (``rtcsync``, roles/common) or systemd-timesyncd tells the kernel once it has
  set the clock; a clock set by hand or from a saved file (``settimeofday``) is unsynchronised
  until then.
* ``"floor"`` (the default): only ``wall clock >= EARLIEST_CAPTURE``. It catches the 1970 boot,
  not a stale saved time; for machines whose kernel state says nothing about their clock
  (containers, VMs without an NTP daemon, the demo, tests).
* ``"none"``: trust the wall clock as it is (events it stamps before the floor are refused at
  the edge itself).

Once the kernel has said "synchronised", this process trusts the clock (above the floor) until it
stops: the kernel flags a clock unsynchronised again ~9 h after the NTP daemon's last update, and
a lane cut off from its NTP server that long keeps a clock that was right, off by seconds a day;
holding its sightings then would only lose them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from app.contract import EARLIEST_CAPTURE

log = logging.getLogger(__name__)

ClockRequirement = Literal["kernel", "floor", "none"]
CLOCK_REQUIREMENTS: tuple[ClockRequirement, ...] = ("kernel", "floor", "none")


class WallClock(Protocol):
    """The two clocks the agent stamps with, and whether the wall clock may be used."""

    def now(self) -> datetime:
        """The wall clock, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps (``time.monotonic``); capture instants."""
        ...

    def synchronised(self) -> bool:
        """Whether ``now()`` may stamp an event."""
        ...


# -- the kernel's NTP state (adjtimex(2)) -----------------------------------------------------

# adjtimex's return value: the clock state (include/uapi/linux/timex.h).
TIME_OK, TIME_INS, TIME_DEL, TIME_OOP, TIME_WAIT, TIME_ERROR = range(6)
_STATES = {
    TIME_OK: "TIME_OK",
    TIME_INS: "TIME_INS",
    TIME_DEL: "TIME_DEL",
    TIME_OOP: "TIME_OOP",
    TIME_WAIT: "TIME_WAIT",
    TIME_ERROR: "TIME_ERROR",
}
STA_PLL = 0x0001
STA_INS = 0x0010
STA_DEL = 0x0020
STA_UNSYNC = 0x0040
STA_CLOCKERR = 0x1000
# NTP_PHASE_LIMIT: the kernel's maxerror at boot and after every settimeofday (clock set by hand
# or from a file), in microseconds; it sets STA_UNSYNC itself when maxerror grows to it.
MAXERROR_LIMIT_US = 16_000_000


@dataclass(frozen=True, slots=True)
class KernelClockState:
    """What ``adjtimex`` says: its return value and the fields that tell synchronisation."""

    state: int  # TIME_OK .. TIME_ERROR
    status: int  # STA_* bits
    maxerror_us: int
    esterror_us: int

    @property
    def synchronised(self) -> bool:
        """An NTP daemon vouches for the clock.

        ``TIME_ERROR`` comes with ``STA_UNSYNC`` (nobody said the clock is right, or the
        kernel's error bound ran out) or with a PPS/clock fault. A daemon that has set the
        clock lowers ``maxerror`` below 16 s; chrony without ``rtcsync`` leaves ``STA_UNSYNC``
        set on Linux even then (clearing it would start the kernel's RTC updates), so, as
        ``timedatectl``'s "System clock synchronized" does, a small ``maxerror`` wins over
        ``STA_UNSYNC``.
        """
        if self.maxerror_us >= MAXERROR_LIMIT_US:
            return False
        if self.state == TIME_ERROR and not self.status & STA_UNSYNC:
            return False  # a PPS or clock hardware fault, not merely the flag
        return not self.status & STA_CLOCKERR

    def describe(self) -> str:
        state = _STATES.get(self.state, str(self.state))
        names = (("STA_UNSYNC", STA_UNSYNC), ("STA_PLL", STA_PLL), ("STA_CLOCKERR", STA_CLOCKERR))
        flags = [name for name, bit in names if self.status & bit]
        return (
            f"{state}, status 0x{self.status:04x}"
            + (f" ({' '.join(flags)})" if flags else "")
            + f", maxerror {self.maxerror_us / 1e6:.3f} s"
        )


def decode_adjtimex(
    state: int, status: int, maxerror_us: int, esterror_us: int
) -> KernelClockState:
    """The state from ``adjtimex``'s return value and ``struct timex`` fields."""
    return KernelClockState(int(state), int(status), int(maxerror_us), int(esterror_us))


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` of glibc's ``adjtimex`` (``long`` fields: right on 64-bit and on the
    32-bit ``adjtimex`` symbol, which keeps the 32-bit layout)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


AdjtimexCall = Callable[[Any], int]
_adjtimex: AdjtimexCall | None = None


def _libc_adjtimex() -> AdjtimexCall:
    global _adjtimex
    if _adjtimex is None:
        if not sys.platform.startswith("linux"):
            raise OSError(errno.ENOSYS, f"adjtimex is Linux only (this is {sys.platform})")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.adjtimex
        function.argtypes = [ctypes.POINTER(_Timex)]
        function.restype = ctypes.c_int
        _adjtimex = function
    return _adjtimex


def read_kernel_clock(adjtimex: AdjtimexCall | None = None) -> KernelClockState:
    """The kernel's NTP state (``adjtimex`` with ``modes = 0``: reads, changes nothing).

    Raises ``OSError`` when it cannot be read: not Linux, or a seccomp filter refuses the
    call (systemd's ``ProtectClock=yes`` refuses even a read with EPERM)."""
    call = adjtimex if adjtimex is not None else _libc_adjtimex()
    timex = _Timex()
    result = int(call(ctypes.byref(timex)))
    if result < 0:
        code = ctypes.get_errno() or errno.EIO
        raise OSError(code, f"adjtimex: {os.strerror(code)}")
    return decode_adjtimex(result, timex.status, timex.maxerror, timex.esterror)


# -- the clock the agent uses ------------------------------------------------------------------


class SystemClock:
    """The machine's clocks, judged by ``require_sync`` (module docstring).

    ``kernel`` whose state cannot be read (``problem`` says why, logged once at ERROR) falls
    back to the floor: a lane must not hold everything because of its sandbox."""

    def __init__(
        self,
        require_sync: ClockRequirement = "floor",
        *,
        probe: Callable[[], KernelClockState] = read_kernel_clock,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        floor: datetime = EARLIEST_CAPTURE,
    ) -> None:
        if require_sync not in CLOCK_REQUIREMENTS:
            raise ValueError(f"require_sync must be one of {', '.join(CLOCK_REQUIREMENTS)}")
        self.require_sync: ClockRequirement = require_sync
        self._probe = probe
        self._wall = wall
        self._monotonic = monotonic
        self._floor = floor
        self._lock = threading.Lock()
        self._latched = False  # the kernel said synchronised once: trusted from then on
        self.kernel_state: KernelClockState | None = None
        self.problem: str | None = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall(), UTC)

    def monotonic(self) -> float:
        return self._monotonic()

    def synchronised(self) -> bool:
        if self.require_sync == "none":
            return True
        now = self.now()
        with self._lock:
            if now < self._floor:
                if self._latched:
                    log.error("clock: the wall clock went back to %s; not trusted again", now)
                    self._latched = False
                return False
            if self.require_sync == "floor" or self._latched:
                return True
            try:
                state = self._probe()
            except OSError as exc:
                if self.problem is None:
                    log.error(
                        "clock: cannot read the kernel's clock state (%s); trusting the wall"
                        " clock from %s on, as require_sync = 'floor' would",
                        exc,
                        self._floor.date(),
                    )
                self.problem = f"kernel clock state unreadable ({exc.strerror or exc})"
                return True
            self.problem = None
            self.kernel_state = state
            if state.synchronised:
                self._latched = True
                log.info("clock: synchronised (kernel: %s); wall clock %s", state.describe(), now)
            return state.synchronised

    def describe(self) -> str:
        """For logs: what the last look said."""
        if self.problem:
            return self.problem
        if self.require_sync == "kernel" and self.kernel_state is not None:
            return f"kernel: {self.kernel_state.describe()}"
        return f"require_sync={self.require_sync}, wall clock {self.now().isoformat()}"

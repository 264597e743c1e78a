from __future__ import annotations

import os

from app.edge.systemd import SystemdNotifier
from tests.edge.conftest import NotifySocket


def test_ready_watchdog_and_stopping_reach_the_notify_socket(notify_socket: NotifySocket) -> None:
    now = [0.0]
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "2000000"},
        clock=lambda: now[0],
    )
    assert notifier.watchdog_interval_s == 1.0, "ping at half of WatchdogSec"
    assert notifier.ready("1 lane")
    assert notify_socket.wait_for("READY=1") == ["READY=1\nSTATUS=1 lane"]
    assert notifier.watchdog()
    assert not notifier.watchdog(), "not due again within half the period"
    now[0] += 1.0
    assert notifier.watchdog()
    assert notifier.stopping()
    messages = [notify_socket.sock.recv(100).decode() for _ in range(3)]
    assert messages == ["WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    notifier.close()


def test_without_notify_socket_it_is_a_quiet_no_op() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.ready()
    assert not notifier.watchdog()


def test_a_watchdog_meant_for_another_pid_is_ignored(notify_socket: NotifySocket) -> None:
    env = {
        "NOTIFY_SOCKET": str(notify_socket.path),
        "WATCHDOG_USEC": "1000000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    assert SystemdNotifier(env).watchdog_interval_s is None
